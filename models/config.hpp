#pragma once
// A model's architecture, read from a Hugging Face config.json. `model_type` picks the family.
#include <filesystem>
#include <string>

namespace pathpatch {

enum class Family { Gpt2, Llama };
const char* family_name(Family f);

struct ModelConfig {
  Family family = Family::Gpt2;
  int n_layers = 0;
  int d_model = 0;
  int n_heads = 0;
  int n_kv_heads = 0;  // grouped-query attention: n_heads is a multiple of n_kv_heads
  int d_head = 0;
  int d_mlp = 0;
  int vocab_size = 0;
  int n_ctx = 0;        // longest sequence the model accepts
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;  // Llama only
  bool tie_embeddings = true;   // unembedding = token embedding (GPT-2 always; Llama if configured)
  bool attn_only = false;       // pathpatch extension: blocks without MLPs (GPT-2 layout only)
  int bos_token_id = -1;
  int eos_token_id = -1;

  // Parses config.json text; `where` names the file in errors (ConfigError for every problem).
  static ModelConfig parse(const std::string& json_text, const std::string& where);
  static ModelConfig load(const std::filesystem::path& config_json);

  int n_groups() const { return n_heads / n_kv_heads; }  // query heads per key/value head
  int64_t n_params() const;
  std::string summary() const;  // a few lines for `pathpatch info`
};

}  // namespace pathpatch
