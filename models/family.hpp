#pragma once
// A model family: what tells one architecture from another, as data and one small function.
//
// Adding a family is one file in models/families/ (llama.cpp keeps one per architecture too):
//  - `configure` reads the family's config.json keys into the generic ModelConfig (norm kind,
//    positions, attention options, MLP kind, residual wiring) and refuses, naming the key, what
//    the forward cannot compute;
//  - `names` is its table of tensor names: where Hugging Face's save_pretrained stores each weight
//    the forward uses;
//  - plus a line in families/registry.cpp, its test (tests/test_families.cpp) and its golden files.
// The loader, random checkpoints, the graph builder and the forward read only ModelConfig and the
// table: nothing outside models/families/ asks which family a model is.
#include <cstdint>
#include <initializer_list>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "models/config.hpp"

namespace pathpatch {

// The weights the forward reads. A slot the config does not use (a bias of a model without biases,
// the MLP of an attention-only model) is not read.
enum class WeightSlot : uint8_t {
  // The whole model.
  TokenEmbed, PosEmbed, FinalNorm, FinalNormBias, Unembed,
  // Each layer (their names hold a %d for the layer).
  AttnNorm, AttnNormBias, Q, QBias, K, KBias, V, VBias, QKV, QKVBias, O, OBias, AttnPostNorm,
  MlpNorm, MlpNormBias, MlpIn, MlpInBias, MlpUp, MlpUpBias, MlpOut, MlpOutBias, MlpPostNorm,
};
inline bool per_layer(WeightSlot s) { return s >= WeightSlot::AttnNorm; }

struct WeightName {
  WeightSlot slot;
  const char* name;  // "h.%d.attn.c_attn.weight", after the base prefix (Unembed: never prefixed)
};

// How matrices are stored: nn.Linear's [out, in], or GPT-2's Conv1D [in, out].
enum class MatrixLayout : uint8_t { OutIn, InOut };
// A fused query/key/value projection (the QKV slots): its output is q | k | v (GPT-2's c_attn), or
// per head [H][q, k, v][E] (GPT-NeoX's query_key_value).
enum class FusedQKV : uint8_t { Blocks, PerHead };

// Reading one config.json: typed lookups that name the key (and the file) in every ConfigError.
// Families use it to read their keys (models/family.hpp).
class ConfigKeys {
 public:
  ConfigKeys(const nlohmann::json& j, std::string where) : j_(j), where_(std::move(where)) {}

  // The first of `names` present and not null; a ConfigError naming them all if none is.
  int integer(std::initializer_list<const char*> names) const;
  int integer_or(std::initializer_list<const char*> names, int fallback) const;
  double number_or(std::initializer_list<const char*> names, double fallback) const;
  // A positive number that float32 holds as a normal number (a norm epsilon): checked as read.
  float positive_float(std::initializer_list<const char*> names, double fallback) const;
  bool boolean_or(std::initializer_list<const char*> names, bool fallback) const;
  std::string string_or(std::initializer_list<const char*> names, const std::string& fallback) const;
  const nlohmann::json* find(std::initializer_list<const char*> names) const;  // null if absent or null
  bool has(const char* name) const { return find({name}) != nullptr; }
  bool is_null(const char* name) const;  // present, and null (Hugging Face's "none", e.g. for soft-caps)

  // A hidden_act / activation_function value as a nonlinearity; ConfigError naming the key otherwise.
  Nonlinearity activation(const char* key, const std::string& fallback) const;
  // Hugging Face's rope_scaling object (null or absent: none); refuses kinds pathpatch cannot compute.
  RopeScaling rope_scaling() const;
  // Refuses a boolean key whose value (or default) is not `allowed`: a feature the forward lacks.
  void refuse_unless(const char* name, bool allowed, bool fallback, const std::string& why) const;
  // Hugging Face's per-layer attention kinds ("sliding_attention" / "full_attention"), if listed.
  void layer_types(int n_layers, SlidingWindow& window) const;

  [[noreturn]] void fail(const std::string& what) const;
  const std::string& where() const { return where_; }

 private:
  const nlohmann::json& j_;
  std::string where_;
};


struct Family {
  const char* name;                       // as `pathpatch info` prints it: "gpt_neox"
  std::vector<std::string> model_types;   // the config.json model_type values it reads
  void (*configure)(const ConfigKeys& keys, ModelConfig& cfg);
  // Prefixes the base model's tensor names carry ("transformer.", "model."); the loader takes the
  // first one under which the token embedding is stored, random checkpoints write the first.
  std::vector<std::string> prefixes;
  MatrixLayout matrices = MatrixLayout::OutIn;
  FusedQKV fused = FusedQKV::Blocks;
  std::vector<WeightName> names;          // every slot the family can have, in storage order
};

// The registry (models/families/registry.cpp).
const std::vector<const Family*>& families();
const Family* find_family(std::string_view model_type);  // null if no family reads it

}  // namespace pathpatch
