#include "models/config.hpp"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "graph/error.hpp"
#include "models/json_text.hpp"

namespace pathpatch {

const char* family_name(Family f) { return f == Family::Gpt2 ? "gpt2" : "llama"; }

namespace {

using nlohmann::json;


class Keys {
 public:
  Keys(const json& j, std::string where) : j_(j), where_(std::move(where)) {}

  // The first of `names` present; a ConfigError naming them all if none is.
  int integer(std::initializer_list<const char*> names) const {
    const json* v = find(names);
    if (!v) throw ConfigError(where_ + ": missing key " + list(names));
    return as_int(*v, names);
  }
  int integer_or(std::initializer_list<const char*> names, int fallback) const {
    const json* v = find(names);
    return v && !v->is_null() ? as_int(*v, names) : fallback;
  }
  float number_or(const char* name, float fallback) const {
    const json* v = find({name});
    if (!v || v->is_null()) return fallback;
    if (!v->is_number()) throw ConfigError(where_ + ": key '" + name + "' must be a number, got " + detail::json_text(*v));
    return v->get<float>();
  }
  bool boolean_or(const char* name, bool fallback) const {
    const json* v = find({name});
    if (!v || v->is_null()) return fallback;
    if (!v->is_boolean()) throw ConfigError(where_ + ": key '" + name + "' must be true or false, got " + detail::json_text(*v));
    return v->get<bool>();
  }
  std::string string_or(const char* name, const std::string& fallback) const {
    const json* v = find({name});
    if (!v || v->is_null()) return fallback;
    if (!v->is_string()) throw ConfigError(where_ + ": key '" + name + "' must be a string, got " + detail::json_text(*v));
    return v->get<std::string>();
  }
  const json* find(std::initializer_list<const char*> names) const {
    for (const char* n : names)
      if (j_.contains(n)) return &j_[n];
    return nullptr;
  }
  const std::string& where() const { return where_; }

 private:
  int as_int(const json& v, std::initializer_list<const char*> names) const {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > (1 << 30))
      throw ConfigError(where_ + ": key " + list(names) + " must be a non-negative integer, got " + detail::json_text(v));
    return v.get<int>();
  }
  static std::string list(std::initializer_list<const char*> names) {
    std::string s;
    for (const char* n : names) s += std::string(s.empty() ? "'" : " or '") + n + "'";
    return s;
  }
  const json& j_;
  std::string where_;
};

void require_positive(const Keys& k, int value, const char* what) {
  if (value <= 0) throw ConfigError(k.where() + ": " + what + " must be positive, got " + std::to_string(value));
}

// The parameter count, computed in T: int64_t for n_params(), double for parse()'s check that the
// int64_t count cannot overflow.
template <class T>
T param_count(const ModelConfig& c) {
  T D = c.d_model, A = T(c.n_heads) * c.d_head, KV = T(c.n_kv_heads) * c.d_head, F = c.d_mlp;
  T per_layer = 0, rest = T(c.vocab_size) * D;
  if (c.family == Family::Gpt2) {
    per_layer = 2 * D + D * 3 * A + 3 * A + A * D + D;  // ln_1, c_attn, c_proj
    if (!c.attn_only) per_layer += 2 * D + D * F + F + F * D + D;  // ln_2, mlp
    rest += T(c.n_ctx) * D + 2 * D;
  } else {
    per_layer = D + D * A + 2 * D * KV + A * D + D + 3 * D * F;
    rest += D + (c.tie_embeddings ? 0 : T(c.vocab_size) * D);
  }
  return rest + T(c.n_layers) * per_layer;
}

}  // namespace

ModelConfig ModelConfig::parse(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw ConfigError(where + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw ConfigError(where + ": not a JSON object");
  Keys k(j, where);
  if (!j.contains("model_type") || !j["model_type"].is_string())
    throw ConfigError(where + ": missing key 'model_type' (\"gpt2\" or \"llama\")");
  std::string type = j["model_type"].get<std::string>();

  ModelConfig c;
  if (type == "gpt2") {
    c.family = Family::Gpt2;
    c.n_layers = k.integer({"n_layer", "num_hidden_layers"});
    c.d_model = k.integer({"n_embd", "hidden_size"});
    c.n_heads = k.integer({"n_head", "num_attention_heads"});
    c.n_kv_heads = c.n_heads;
    c.vocab_size = k.integer({"vocab_size"});
    c.n_ctx = k.integer({"n_positions", "n_ctx", "max_position_embeddings"});
    c.norm_eps = k.number_or("layer_norm_epsilon", 1e-5f);
    c.attn_only = k.boolean_or("attn_only", false);
    c.d_mlp = k.integer_or({"n_inner"}, 4 * c.d_model);
    std::string act = k.string_or("activation_function", "gelu_new");
    if (act != "gelu_new" && act != "gelu_pytorch_tanh")
      throw ConfigError(where + ": activation_function '" + act +
                        "' is not supported; pathpatch's GPT-2 uses gelu_new (tanh)");
    c.tie_embeddings = true;
  } else if (type == "llama") {
    c.family = Family::Llama;
    c.n_layers = k.integer({"num_hidden_layers"});
    c.d_model = k.integer({"hidden_size"});
    c.n_heads = k.integer({"num_attention_heads"});
    c.n_kv_heads = k.integer_or({"num_key_value_heads"}, c.n_heads);
    c.d_mlp = k.integer({"intermediate_size"});
    c.vocab_size = k.integer({"vocab_size"});
    c.n_ctx = k.integer({"max_position_embeddings"});
    c.norm_eps = k.number_or("rms_norm_eps", 1e-6f);
    c.rope_theta = k.number_or("rope_theta", 10000.0f);
    c.tie_embeddings = k.boolean_or("tie_word_embeddings", false);
    std::string act = k.string_or("hidden_act", "silu");
    if (act != "silu") throw ConfigError(where + ": hidden_act '" + act + "' is not supported; Llama uses silu");
    if (const json* rs = k.find({"rope_scaling"}); rs && !rs->is_null())
      throw ConfigError(where + ": rope_scaling " + detail::json_text(*rs) + " is not supported (plain RoPE only)");
    if (k.boolean_or("attention_bias", false) || k.boolean_or("mlp_bias", false))
      throw ConfigError(where + ": attention_bias / mlp_bias are not supported for llama");
  } else {
    throw ConfigError(where + ": model_type '" + type + "' is not supported (supported: gpt2, llama)");
  }
  c.bos_token_id = k.integer_or({"bos_token_id"}, -1);
  c.eos_token_id = k.integer_or({"eos_token_id"}, -1);

  require_positive(k, c.n_layers, "the number of layers");
  require_positive(k, c.d_model, "the model width");
  require_positive(k, c.n_heads, "the number of heads");
  require_positive(k, c.n_kv_heads, "num_key_value_heads");
  require_positive(k, c.vocab_size, "vocab_size");
  require_positive(k, c.n_ctx, "the context length");
  if (!c.attn_only) require_positive(k, c.d_mlp, "the MLP width");
  if (c.family == Family::Llama && j.contains("head_dim") && !j["head_dim"].is_null()) {
    c.d_head = k.integer({"head_dim"});
  } else {
    if (c.d_model % c.n_heads)
      throw ConfigError(where + ": the width " + std::to_string(c.d_model) + " is not a multiple of the " +
                        std::to_string(c.n_heads) + " heads");
    c.d_head = c.d_model / c.n_heads;
  }
  require_positive(k, c.d_head, "head_dim");
  if (c.n_heads % c.n_kv_heads)
    throw ConfigError(where + ": num_attention_heads " + std::to_string(c.n_heads) +
                      " is not a multiple of num_key_value_heads " + std::to_string(c.n_kv_heads));
  if (c.family == Family::Llama && c.d_head % 2)
    throw ConfigError(where + ": head_dim " + std::to_string(c.d_head) + " must be even for rotary embeddings");
  if (!(c.norm_eps > 0)) throw ConfigError(where + ": the norm epsilon must be positive");
  if (!(c.rope_theta > 0)) throw ConfigError(where + ": rope_theta must be positive");
  if (param_count<double>(c) >= 0x1p62)  // all terms are non-negative: no 64-bit partial sum overflows either
    throw ConfigError(where + ": the sizes describe more than 2^62 parameters");
  return c;
}

ModelConfig ModelConfig::load(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw IoError(path.string() + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), path.string());
}

int64_t ModelConfig::n_params() const { return param_count<int64_t>(*this); }  // parse() checked it fits

std::string ModelConfig::summary() const {
  std::ostringstream s;
  s << "family      " << family_name(family) << (attn_only ? " (attention only)" : "") << "\n"
    << "layers      " << n_layers << "\n"
    << "d_model     " << d_model << "\n"
    << "heads       " << n_heads << " x d_head " << d_head;
  if (n_kv_heads != n_heads) s << " (" << n_kv_heads << " key/value heads)";
  s << "\n";
  if (!attn_only) s << "d_mlp       " << d_mlp << "\n";
  s << "vocab       " << vocab_size << "\n"
    << "context     " << n_ctx << "\n"
    << "norm eps    " << norm_eps << "\n";
  if (family == Family::Llama) s << "rope theta  " << rope_theta << "\n";
  s << "tied head   " << (tie_embeddings ? "yes" : "no") << "\n"
    << "parameters  " << n_params() << "\n";
  return s.str();
}

}  // namespace pathpatch
