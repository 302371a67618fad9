#pragma once
// A loaded GPT-2 or Llama model: config, weights (F32 in memory), its graph of named nodes, and
// the forward computation, one function per step (the evaluator in graph/ drives them).
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "graph/backend.hpp"
#include "graph/graph.hpp"
#include "graph/tensor.hpp"
#include "models/config.hpp"

namespace pathpatch {

class Checkpoint;
class Tokenizer;

// y = x W + b, with W as the checkpoint stores it: [in, out] (GPT-2's Conv1D) or [out, in]
// (nn.Linear, Llama). `col_offset` selects a block of columns of a fused matrix (GPT-2's c_attn).
struct Linear {
  Tensor w;
  Tensor b;  // [out] or undefined
  bool out_in = false;
  int64_t in = 0, out = 0, col_offset = 0;

  // y[:, 0:cols] = x[:, 0:nin] W[in0:in0+nin, col0:col0+cols] (+ bias). Strides in floats.
  void apply(const float* x, int64_t ldx, int64_t rows, float* y, int64_t ldy, int64_t col0, int64_t cols,
             bool bias = true, int64_t in0 = 0, int64_t nin = -1) const;
};

struct LayerWeights {
  Tensor ln1_w, ln1_b;  // ln*_b undefined for RMSNorm
  Linear q, k, v, o;
  Tensor ln2_w, ln2_b;
  Linear mlp_in;   // GPT-2 c_fc, Llama gate_proj
  Linear mlp_up;   // Llama up_proj
  Linear mlp_out;  // GPT-2 c_proj, Llama down_proj
};

// Activation ids of one layer, so the forward never looks names up.
struct LayerActs {
  ActId resid_pre = -1, ln1 = -1, q = -1, k = -1, v = -1, rot_q = -1, rot_k = -1, scores = -1, pattern = -1,
        z = -1, result = -1, attn_out = -1, resid_mid = -1, ln2 = -1, pre = -1, pre_linear = -1, post = -1,
        mlp_out = -1, resid_post = -1;
};

struct ModelActs {
  ActId embed = -1, pos_embed = -1, ln_final = -1;
  std::vector<LayerActs> layers;
};

// The graph of named nodes and activations for a config (models/names.cpp).
Graph build_graph(const ModelConfig& cfg, ModelActs* acts);

class Model final : public Backend {
 public:
  // Reads config.json and the weights (and a tokenizer, if the folder has one).
  static Model load(const std::filesystem::path& dir);
  Model(ModelConfig cfg, const Checkpoint& ckpt);

  const ModelConfig& config() const { return cfg_; }
  const Graph& graph() const override { return graph_; }
  const ModelActs& acts() const { return acts_; }
  const std::filesystem::path& dir() const { return dir_; }
  uint64_t id() const { return id_; }  // unique per loaded model; a Cache belongs to one

  // InputError unless the batch fits this model (ids in the vocabulary, length within context).
  void validate(const Batch& batch, const std::string& what) const;

  // The tokenizer found beside the weights (nullptr if none), and text -> a left-padded batch
  // (BOS first where Hugging Face adds it). TokenizerError if the model has no tokenizer.
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }
  Batch encode(const std::vector<std::string>& texts) const;
  void set_tokenizer(std::shared_ptr<const Tokenizer> t) { tokenizer_ = std::move(t); }

  // Backend: one function per step.
  Tensor embed(const Batch& batch, Window rows, ComputeContext& ctx) const override;
  AttnResult attention_z(int layer, const AttnCall& call, ComputeContext& ctx) const override;
  Tensor attention_out(int layer, const Tensor& z, ComputeContext& ctx) const override;
  Tensor mlp(int layer, const Tensor& x, ComputeContext& ctx) const override;
  Tensor final_norm(const Tensor& x, ComputeContext& ctx) const override;
  Tensor unembed(const Tensor& h) const override;

  const LayerWeights& layer(int L) const { return layers_.at(L); }
  const Tensor& unembedding() const { return unembed_; }  // [V, D]

 private:
  Tensor norm(const Tensor& x, const Tensor& w, const Tensor& b, ComputeContext& ctx) const;
  Tensor rope(const Tensor& x, const Batch& layout, int64_t first_pos) const;

  ModelConfig cfg_;
  std::filesystem::path dir_;
  uint64_t id_;
  Graph graph_;
  ModelActs acts_;
  Tensor wte_, wpe_, lnf_w_, lnf_b_, unembed_;
  std::vector<LayerWeights> layers_;
  std::vector<double> inv_freq_;  // RoPE
  std::shared_ptr<const Tokenizer> tokenizer_;
};

// Convenience: Model::load.
Model load_model(const std::filesystem::path& dir);

}  // namespace pathpatch
