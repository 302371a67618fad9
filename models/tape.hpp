#pragma once
// Reverse mode over the forward's steps: what a forward keeps for its backward (Tape), and where a
// backward leaves the gradients it was asked for (GradientSink). The Model's *_backward functions
// (models/backward.cpp) read the one and write the other; pathpatch/gradients.hpp drives them.
//
// A Tape keeps an activation only when asked to, by ActId: the backward of a layer reads its own
// activations, so gradients that stop at layer L need nothing kept below it.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "graph/backend.hpp"
#include "graph/error.hpp"
#include "graph/graph.hpp"
#include "graph/tensor.hpp"

namespace pathpatch {

class Tape final : public ComputeContext {
 public:
  explicit Tape(size_t n_activations) : keep_(n_activations, 0), saved_(n_activations), set_(n_activations) {}
  void keep(ActId a) {
    if (a >= 0) keep_[a] = 1;
  }
  bool wants(ActId a) const override { return a >= 0 && keep_[a]; }
  void emit(ActId a, Tensor& value) override {
    if (!wants(a)) return;
    if (set_[a].defined()) std::copy_n(set_[a].data(), value.numel(), value.data_mut());
    saved_[a] = value;
  }
  // The forward goes on with `value` in place of what it computed for `a` (EAP-IG's activation
  // interpolation); the backward must then not pass gradients into what computed it.
  void set(ActId a, const Tensor& value) {
    keep(a);
    set_.resize(keep_.size());
    set_[a] = value;
  }
  const Tensor& operator[](ActId a) const {
    PP_CHECK(a >= 0 && saved_[a].defined(), "the backward reads an activation its forward did not keep");
    return saved_[a];
  }
  int64_t bytes() const {
    int64_t n = 0;
    for (const Tensor& t : saved_) n += t.defined() ? t.bytes() : 0;
    return n;
  }

 private:
  std::vector<char> keep_;
  std::vector<Tensor> saved_;
  std::vector<Tensor> set_;
};

class GradientSink {
 public:
  explicit GradientSink(size_t n_activations) : want_(n_activations, 0), grads_(n_activations) {}
  void want(ActId a) {
    if (a >= 0) want_[a] = 1;
  }
  bool wants(ActId a) const { return a >= 0 && want_[a]; }
  // Keeps a reference: the backward does not write into `g` afterwards.
  void put(ActId a, const Tensor& g) {
    if (wants(a)) grads_[a] = g;
  }
  const Tensor& operator[](ActId a) const { return grads_.at(a); }

 private:
  std::vector<char> want_;
  std::vector<Tensor> grads_;
};

}  // namespace pathpatch
