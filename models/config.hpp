#pragma once
// A model's architecture, read from a Hugging Face config.json. `model_type` picks the family
// (models/family.hpp); the family reads its keys into this one description, which the loader,
// the forward and the graph builder follow without asking which family it was.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace pathpatch {

struct Family;

enum class Norm : uint8_t {
  LayerNorm,       // (x - mean) / sqrt(var + eps) * w + b
  RMSNorm,         // x / sqrt(mean(x^2) + eps) * w
  RMSNormPlusOne,  // x / sqrt(mean(x^2) + eps) * (1 + w)   (Gemma)
};
const char* norm_name(Norm n);

enum class Nonlinearity : uint8_t {
  GeluTanh,  // GPT-2's gelu_new, gelu_pytorch_tanh
  GeluErf,   // exact GELU (Hugging Face "gelu")
  Silu,      // x * sigmoid(x)
};
const char* nonlinearity_name(Nonlinearity n);

// RoPE's frequencies, rescaled for a longer context (Hugging Face modeling_rope_utils).
struct RopeScaling {
  enum Kind : uint8_t { None, Linear, Llama3 } kind = None;
  double factor = 1;                // Linear, Llama3: positions stretched by this factor
  double low_freq_factor = 1;       // Llama3
  double high_freq_factor = 4;      // Llama3
  double original_context = 8192;   // Llama3: original_max_position_embeddings
};

// Sliding-window attention: query i sees keys i - size < j <= i in the layers that slide.
struct SlidingWindow {
  int size = 0;               // 0: no layer slides
  std::vector<bool> pattern;  // layer L slides iff pattern[L % pattern.size()]; empty: every layer
  int first = 0;              // layers below `first` never slide (Qwen2's max_window_layers)
  int of(int layer) const;    // the window of a layer; 0: global
};

struct ModelConfig {
  const Family* family = nullptr;  // the family that read it (never null once parsed)

  // Sizes.
  int n_layers = 0;
  int d_model = 0;
  int n_heads = 0;
  int n_kv_heads = 0;   // grouped-query attention: n_heads is a multiple of n_kv_heads
  int d_head = 0;       // may differ from d_model / n_heads (Gemma-2)
  int d_mlp = 0;
  int vocab_size = 0;
  int n_ctx = 0;        // longest sequence the model accepts

  // Norms: before each sub-layer and at the end; Gemma-2 also normalises each sub-layer's output.
  Norm norm = Norm::LayerNorm;
  float norm_eps = 1e-5f;
  bool post_norms = false;

  // Positions: learned (added to the embeddings) and/or rotary (on the first rotary_dims of q, k:
  // the config's rotary_fraction of d_head, GPT-NeoX's rotary_pct).
  bool learned_positions = false;
  double rotary_fraction = 0;
  int rotary_dims = 0;
  double rope_theta = 10000;
  RopeScaling rope_scaling;

  // Attention: scores = q.k * attn_scale, then soft-capped, then masked.
  float attn_scale = 0;
  float attn_softcap = 0;  // scores = tanh(scores / c) * c; 0: none
  SlidingWindow window;
  bool qkv_bias = false;
  bool o_bias = false;

  // MLP: down(act(in(x))), or down(act(gate(x)) * up(x)) when gated.
  bool gated_mlp = false;
  Nonlinearity mlp_act = Nonlinearity::GeluTanh;
  bool mlp_bias = false;

  // Wiring and the two ends.
  bool parallel_residual = false;  // attention and MLP both read resid_pre (GPT-NeoX)
  bool attn_only = false;          // pathpatch extension: blocks without MLPs
  float embed_scale = 1;           // embeddings times this (Gemma: sqrt(d_model))
  float logit_softcap = 0;         // logits = tanh(logits / c) * c; 0: none
  bool tie_embeddings = true;      // unembedding = token embedding
  int bos_token_id = -1;
  int eos_token_id = -1;

  // Parses config.json text; `where` names the file in errors (ConfigError for every problem,
  // naming the key).
  static ModelConfig parse(const std::string& json_text, const std::string& where);
  static ModelConfig load(const std::filesystem::path& config_json);

  const char* family_name() const;
  int n_groups() const { return n_heads / n_kv_heads; }  // query heads per key/value head
  int64_t n_params() const;
  std::string summary() const;  // a few lines for `pathpatch info`
};

}  // namespace pathpatch
