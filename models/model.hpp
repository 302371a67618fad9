#pragma once
// A loaded model of any family: its config, its weights (F32 in memory), its graph of named nodes,
// and the forward computation, one function per kind of step (the evaluator in graph/ drives
// them). The forward reads only the config's options: no step asks which family it computes.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "graph/backend.hpp"
#include "graph/graph.hpp"
#include "graph/tensor.hpp"
#include "models/config.hpp"
#include "models/safetensors.hpp"
#include "models/tape.hpp"
#include "models/weights.hpp"

namespace pathpatch {

class Checkpoint;
class Tokenizer;

// Activation ids of one layer, so the forward never looks names up (-1: the model has none).
struct LayerActs {
  ActId resid_pre = -1, ln1 = -1, q = -1, k = -1, v = -1, rot_q = -1, rot_k = -1, scores = -1, pattern = -1,
        z = -1, result = -1, ln1_post = -1, attn_out = -1, resid_mid = -1, ln2 = -1, pre = -1, pre_linear = -1,
        post = -1, ln2_post = -1, mlp_out = -1, resid_post = -1;
};

struct ModelActs {
  ActId embed = -1, pos_embed = -1, ln_final = -1;
  std::vector<LayerActs> layers;
};

// Each query head's own gradients of its q, k and v before RoPE, [B,T,H,E] each: for GQA, k and v
// as if each query head had its own copy (not summed over its group). Edge attribution reads them.
struct HeadInputGrads {
  Tensor q, k, v;
};

// The graph of named nodes and TransformerLens activations for a config (models/activations.cpp).
Graph build_graph(const ModelConfig& cfg, ModelActs* acts);

// TransformerLens's weight processing (HookedTransformer.from_pretrained's defaults), for
// activations named and valued as TransformerLens users know them:
//   fold_ln: each norm's scale (and LayerNorm's bias) moves into the weights that read its output,
//     the norm keeps only its normalisation (LNPre / RMSPre); under LayerNorm those weights are then
//     centred over d_model (a normalised vector has mean 0, so its mean direction is unread).
//   center_writing_weights (LayerNorm models): embeddings, W_O, W_out and their biases have mean 0
//     over d_model, so the residual stream does.
//   center_unembed: W_U (and b_U) have mean 0 over the vocabulary: logits shift, probabilities do
//     not (skipped where the family soft-caps its logits: there they would not be the same).
//   fold_value_biases: each layer's value biases move into its output bias (a head's pattern sums
//     to 1, so its value bias adds a constant to its output).
// The logits' probabilities and every logit difference are unchanged, up to float rounding.
struct WeightProcessing {
  bool fold_ln = true;
  bool center_writing_weights = true;
  bool center_unembed = true;
  bool fold_value_biases = true;
};

class Model final : public Backend {
 public:
  // Reads config.json and the weights (and a tokenizer, if the folder has one). The weights are
  // copied into memory; WeightAccess::Map maps F32 files instead (models/safetensors.hpp says what
  // that risks).
  static Model load(const std::filesystem::path& dir, WeightAccess access = WeightAccess::Read);
  Model(ModelConfig cfg, const Checkpoint& ckpt);
  // A copy with its weights processed as TransformerLens processes them (WeightProcessing above;
  // models/processing.cpp). The copy owns its weights: tied embeddings come untied.
  Model processed(const WeightProcessing& how = {}) const;

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
  // The id that left-pads rows of a batch: EOS where the model has one, else 0 (masked out, so
  // any valid id will do).
  int32_t pad_id() const { return cfg_.eos_token_id >= 0 ? cfg_.eos_token_id : 0; }
  void set_tokenizer(std::shared_ptr<const Tokenizer> t) { tokenizer_ = std::move(t); }

  // Backend: one function per step.
  Tensor embed(const Batch& batch, Window rows, ComputeContext& ctx) const override;
  AttnResult attention_z(int layer, const AttnCall& call, ComputeContext& ctx) const override;
  Tensor attention_out(int layer, const Tensor& z, ComputeContext& ctx) const override;
  Tensor mlp(int layer, const Tensor& x, ComputeContext& ctx) const override;
  Tensor final_norm(const Tensor& x, ComputeContext& ctx) const override;
  Tensor unembed(const Tensor& h) const override;  // logits, soft-capped where the family caps them

  // Backward, one function per step above (models/backward.cpp), for forwards over whole sequences
  // (every position, one input). Each takes the step's input, what its forward kept on the tape,
  // and the gradient of the step's output; it returns the gradient of the step's input and hands
  // the gradients of the step's named activations to `grads` (those it wants). Gradients of
  // activations only: no weight has one.
  void keep_for_backward(int layer, Tape& tape) const;  // what layer L's backward reads
  Tensor attention_z_backward(int layer, const Tensor& x, const Batch& layout, const Tape& tape, const Tensor& dz,
                              GradientSink& grads, HeadInputGrads* per_head = nullptr) const;  // -> d resid [B,T,D]
  // The gradients at every head's q, k and v inputs: the residual x [B,T,D] that enters the layer,
  // as each input alone sees it, from per_head's gradients, added to `sum` [3, H, B, T, D] (role,
  // then head): edge attribution sums them over its steps.
  void head_inputs_backward(int layer, const Tensor& x, const HeadInputGrads& d, float* sum) const;
  Tensor attention_out_backward(int layer, const Tensor& z, const Tensor& dout, GradientSink& grads) const;  // -> dz
  Tensor mlp_backward(int layer, const Tensor& x, const Tape& tape, const Tensor& dout, GradientSink& grads) const;
  Tensor final_norm_backward(const Tensor& x, const Tensor& dy) const;
  // dh [.., D] for dlogits [.., V]; `logits` as unembed returned them (their soft-cap's derivative).
  Tensor unembed_backward(const Tensor& logits, const Tensor& dlogits) const;

  // logit(answer) - logit(wrong) for one row of final hidden states [D], without the full logits.
  double logit_difference(const float* hidden, int32_t answer, int32_t wrong) const;

  const LayerWeights& layer(int L) const { return w_.layers.at(L); }
  const Tensor& unembedding() const { return w_.unembed; }  // [V, D]
  const NormWeights& final_norm_weights() const { return w_.final_norm; }
  // b_U[token]: 0 unless weight processing folded a LayerNorm bias into the logits.
  float unembed_bias(int32_t token) const { return w_.unembed_bias.defined() ? w_.unembed_bias.data()[token] : 0.0f; }
  bool unembed_bias_defined() const { return w_.unembed_bias.defined(); }

 private:
  Model(const Model& base, ModelWeights weights);  // the same model with other weights (processed)
  Tensor norm(const Tensor& x, const NormWeights& w, ComputeContext& ctx) const;
  void activate(Tensor& x) const;  // the MLP's nonlinearity, in place
  Tensor norm_backward(const Tensor& x, const NormWeights& w, const Tensor& dy) const;
  void activate_backward(const Tensor& pre, Tensor& d) const;  // d *= act'(pre)

  ModelConfig cfg_;
  std::filesystem::path dir_;
  uint64_t id_;
  ModelWeights w_;
  Graph graph_;
  ModelActs acts_;
  std::vector<double> rope_freq_;
  std::shared_ptr<const Tokenizer> tokenizer_;
};

// Convenience: Model::load.
Model load_model(const std::filesystem::path& dir, WeightAccess access = WeightAccess::Read);

}  // namespace pathpatch
