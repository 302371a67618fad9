#pragma once
// Tensors as xtensor arrays, without a copy: numpy-style slices, reductions and broadcasting over
// results, probes, sweeps and gradients (xtensor, Debian's libxtensor-dev; only this header needs it).
//
//   #include <pathpatch/xtensor.hpp>
//   auto z = pp::xview(r.probe("z1"));                              // [B, T, H, E], read-only
//   auto norms = xt::sqrt(xt::sum(z * z, {0, 1, 3}));               // per head
//   auto last = xt::view(pp::xview(r.logits), xt::all(), -1, xt::all());
//   pp::Tensor mean = pp::to_tensor(xt::mean(z, {0}));              // back, e.g. for pp::set(...)
//
// A view holds the tensor's storage: it stays valid after the Tensor it came from is gone.
#include <memory>
#include <vector>
#include <xtensor/xadapt.hpp>
#include <xtensor/xexpression.hpp>

#include "graph/tensor.hpp"

namespace pathpatch {

// A read-only xtensor adaptor over `t`'s values, row-major, with `t`'s shape.
inline auto xview(const Tensor& t) {
  const std::vector<size_t> shape(t.shape().begin(), t.shape().end());
  // The guard, a copy of `t`, shares and so keeps its storage.
  return xt::adapt_smart_ptr(t.data(), shape, std::make_shared<const Tensor>(t));
}

// An xtensor expression evaluated into a new Tensor of its shape.
template <class E>
Tensor to_tensor(const xt::xexpression<E>& expression) {
  const E& e = expression.derived_cast();
  const Shape shape(e.shape().begin(), e.shape().end());
  Tensor out = Tensor::uninitialized(shape);
  const std::vector<size_t> dims(e.shape().begin(), e.shape().end());
  auto target = xt::adapt(out.data_mut(), static_cast<size_t>(out.numel()), xt::no_ownership(), dims);
  target = e;
  return out;
}

}  // namespace pathpatch
