#include "models/config.hpp"

#include <cmath>
#include <cstdio>
#include <limits>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "graph/error.hpp"
#include "graph/files.hpp"
#include "models/family.hpp"
#include "models/json_text.hpp"
#include "models/weights.hpp"

namespace pathpatch {

using nlohmann::json;

const char* norm_name(Norm n) {
  switch (n) {
    case Norm::LayerNorm: return "LayerNorm";
    case Norm::RMSNorm: return "RMSNorm";
    case Norm::RMSNormPlusOne: return "RMSNorm (1 + w)";
  }
  return "?";
}

const char* nonlinearity_name(Nonlinearity n) {
  switch (n) {
    case Nonlinearity::GeluTanh: return "gelu (tanh)";
    case Nonlinearity::GeluErf: return "gelu (erf)";
    case Nonlinearity::Silu: return "silu";
  }
  return "?";
}

int SlidingWindow::of(int layer) const {
  if (size <= 0 || layer < first) return 0;
  if (pattern.empty() || pattern[static_cast<size_t>(layer) % pattern.size()]) return size;
  return 0;
}

// ---- ConfigKeys ----------------------------------------------------------------------------

namespace {

std::string key_list(std::initializer_list<const char*> names) {
  std::string s;
  for (const char* n : names) s += std::string(s.empty() ? "'" : " or '") + n + "'";
  return s;
}

}  // namespace

void ConfigKeys::fail(const std::string& what) const { throw ConfigError(where_ + ": " + what); }

const json* ConfigKeys::find(std::initializer_list<const char*> names) const {
  for (const char* n : names)
    if (j_.contains(n) && !j_[n].is_null()) return &j_[n];
  return nullptr;
}

bool ConfigKeys::is_null(const char* name) const { return j_.contains(name) && j_[name].is_null(); }

int ConfigKeys::integer(std::initializer_list<const char*> names) const {
  const json* v = find(names);
  if (!v) fail("missing key " + key_list(names));
  if (!v->is_number_integer() || v->get<int64_t>() < 0 || v->get<int64_t>() > (1 << 30))
    fail("key " + key_list(names) + " must be a non-negative integer, got " + detail::json_text(*v));
  return v->get<int>();
}

int ConfigKeys::integer_or(std::initializer_list<const char*> names, int fallback) const {
  return find(names) ? integer(names) : fallback;
}

double ConfigKeys::number_or(std::initializer_list<const char*> names, double fallback) const {
  const json* v = find(names);
  if (!v) return fallback;
  if (!v->is_number()) fail("key " + key_list(names) + " must be a number, got " + detail::json_text(*v));
  return v->get<double>();
}

float ConfigKeys::positive_float(std::initializer_list<const char*> names, double fallback) const {
  const double v = number_or(names, fallback);
  if (!(v > 0) || !std::isfinite(v)) fail("key " + key_list(names) + " must be positive, got " + std::to_string(v));
  if (v < std::numeric_limits<float>::min() || v > std::numeric_limits<float>::max()) {
    char buf[128];
    std::snprintf(buf, sizeof buf, " = %g is outside what float32 holds (%g to %g)", v, std::numeric_limits<float>::min(),
                  std::numeric_limits<float>::max());
    fail("key " + key_list(names) + buf);
  }
  return static_cast<float>(v);
}

bool ConfigKeys::boolean_or(std::initializer_list<const char*> names, bool fallback) const {
  const json* v = find(names);
  if (!v) return fallback;
  if (!v->is_boolean()) fail("key " + key_list(names) + " must be true or false, got " + detail::json_text(*v));
  return v->get<bool>();
}

std::string ConfigKeys::string_or(std::initializer_list<const char*> names, const std::string& fallback) const {
  const json* v = find(names);
  if (!v) return fallback;
  if (!v->is_string()) fail("key " + key_list(names) + " must be a string, got " + detail::json_text(*v));
  return v->get<std::string>();
}

Nonlinearity ConfigKeys::activation(const char* key, const std::string& fallback) const {
  const std::string act = string_or({key}, fallback);
  // Hugging Face's ACT2FN names for the functions the kernels compute.
  if (act == "gelu_new" || act == "gelu_pytorch_tanh" || act == "gelu_fast") return Nonlinearity::GeluTanh;
  if (act == "gelu") return Nonlinearity::GeluErf;
  if (act == "silu" || act == "swish") return Nonlinearity::Silu;
  fail(std::string(key) + " '" + act + "' is not supported (supported: gelu_new, gelu_pytorch_tanh, gelu_fast, gelu, "
       "silu, swish)");
}

RopeScaling ConfigKeys::rope_scaling() const {
  RopeScaling r;
  const json* rs = find({"rope_scaling"});
  if (!rs) return r;
  const std::string what = "rope_scaling " + detail::json_text(*rs);
  if (!rs->is_object()) fail(what + " must be an object");
  ConfigKeys k(*rs, where_ + ": rope_scaling");
  const std::string type = k.string_or({"rope_type", "type"}, "");
  if (type == "default") return r;
  if (type == "linear") {
    r.kind = RopeScaling::Linear;
  } else if (type == "llama3") {
    r.kind = RopeScaling::Llama3;
    r.low_freq_factor = k.number_or({"low_freq_factor"}, 1);
    r.high_freq_factor = k.number_or({"high_freq_factor"}, 4);
    r.original_context = k.number_or({"original_max_position_embeddings"}, 8192);
    if (!(r.high_freq_factor > r.low_freq_factor) || !(r.low_freq_factor > 0) || !(r.original_context > 0))
      fail(what + ": llama3 scaling needs 0 < low_freq_factor < high_freq_factor and a positive "
           "original_max_position_embeddings");
  } else {
    fail(what + " is not supported: the forward computes rope_type \"linear\" and \"llama3\" (and \"default\")");
  }
  r.factor = k.number_or({"factor"}, 0);
  if (!(r.factor > 0) || !std::isfinite(r.factor)) fail(what + ": 'factor' must be a positive number");
  return r;
}

void ConfigKeys::refuse_unless(const char* name, bool allowed, bool fallback, const std::string& why) const {
  if (boolean_or({name}, fallback) == allowed) return;
  std::string what = "'";  // appended piece by piece: GCC 12 warns falsely (-Wrestrict) on "'" + std::string
  what += name;
  fail(what + "' is not supported: " + why);
}

void ConfigKeys::layer_types(int n_layers, SlidingWindow& window) const {
  const json* types = find({"layer_types"});
  if (!types) return;
  if (!types->is_array() || types->size() != static_cast<size_t>(n_layers))
    fail("'layer_types' must list one attention kind per layer (" + std::to_string(n_layers) + "), got " +
         detail::json_text(*types));
  window.pattern.clear();
  window.first = 0;
  for (const json& t : *types) {
    if (t == "sliding_attention") window.pattern.push_back(true);
    else if (t == "full_attention") window.pattern.push_back(false);
    else fail("layer_types: '" + detail::json_text(t) + "' is not supported (sliding_attention, full_attention)");
  }
}

// ---- Parsing -------------------------------------------------------------------------------

namespace {

void require_positive(const ConfigKeys& k, int value, const char* what) {
  if (value <= 0) k.fail(std::string(what) + " must be positive, got " + std::to_string(value));
}

// Sizes and options every family shares: derived values, then the checks the forward relies on.
void finish(const ConfigKeys& k, ModelConfig& c) {
  require_positive(k, c.n_layers, "the number of layers");
  require_positive(k, c.d_model, "the model width");
  require_positive(k, c.n_heads, "the number of heads");
  require_positive(k, c.n_kv_heads, "num_key_value_heads");
  require_positive(k, c.vocab_size, "vocab_size");
  require_positive(k, c.n_ctx, "the context length");
  if (!c.attn_only) require_positive(k, c.d_mlp, "the MLP width");
  if (c.d_head == 0) {
    if (c.d_model % c.n_heads)
      k.fail("the width " + std::to_string(c.d_model) + " is not a multiple of the " + std::to_string(c.n_heads) +
             " heads");
    c.d_head = c.d_model / c.n_heads;
  }
  require_positive(k, c.d_head, "head_dim");
  if (!(c.rotary_fraction >= 0 && c.rotary_fraction <= 1)) k.fail("the rotary fraction must be in [0, 1]");
  c.rotary_dims = static_cast<int>(c.d_head * c.rotary_fraction);
  if (c.n_heads % c.n_kv_heads)
    k.fail("num_attention_heads " + std::to_string(c.n_heads) + " is not a multiple of num_key_value_heads " +
           std::to_string(c.n_kv_heads));
  if (c.rotary_dims > 0) {
    if (c.rotary_dims > c.d_head)
      k.fail("rotary dimensions " + std::to_string(c.rotary_dims) + " exceed head_dim " + std::to_string(c.d_head));
    if (c.rotary_dims % 2)
      k.fail((c.rotary_dims == c.d_head ? "head_dim " : "the rotary dimensions ") + std::to_string(c.rotary_dims) +
             " must be even for rotary embeddings");
  }
  if (!(c.norm_eps > 0) || !std::isfinite(c.norm_eps)) k.fail("the norm epsilon must be positive");
  if (c.rotary_dims > 0 && (!(c.rope_theta > 0) || !std::isfinite(c.rope_theta))) k.fail("rope_theta must be positive");
  if (c.attn_scale == 0) c.attn_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.d_head)));
  if (!(c.attn_scale > 0) || !std::isfinite(c.attn_scale)) k.fail("the attention score scale must be positive");
  if (c.attn_softcap < 0 || c.logit_softcap < 0 || !std::isfinite(c.attn_softcap) || !std::isfinite(c.logit_softcap))
    k.fail("soft-caps must be positive (or null for none)");
  if (c.window.size < 0) k.fail("the sliding window must be positive (or null for none)");
  // Hugging Face writes the token ids as a number, a list (the first is used) or null. Small
  // checkpoints often keep their config class's defaults (GPT-2's 50256 with a vocabulary of 100):
  // an id outside the vocabulary names no token, and is read as none.
  auto token = [&](const char* key) {
    const json* v = k.find({key});
    if (v && v->is_array()) v = v->empty() ? nullptr : &(*v)[0];
    if (!v) return -1;
    if (!v->is_number_integer()) k.fail(std::string("key '") + key + "' must be a token id, got " + detail::json_text(*v));
    const int64_t id = v->get<int64_t>();
    return id >= 0 && id < c.vocab_size ? static_cast<int>(id) : -1;
  };
  c.bos_token_id = token("bos_token_id");
  c.eos_token_id = token("eos_token_id");
  if (parameter_count<double>(c) >= 0x1p62)  // all terms are non-negative: no 64-bit partial sum overflows either
    k.fail("the sizes describe more than 2^62 parameters");
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
  ConfigKeys k(j, where);
  std::string supported;
  for (const Family* f : families())
    for (const std::string& t : f->model_types) supported += (supported.empty() ? "" : ", ") + t;
  if (!j.contains("model_type") || !j["model_type"].is_string())
    k.fail("missing key 'model_type' (supported: " + supported + ")");
  const std::string type = j["model_type"].get<std::string>();
  const Family* family = find_family(type);
  if (!family) k.fail("model_type '" + type + "' is not supported (supported: " + supported + ")");
  ModelConfig c;
  c.family = family;
  family->configure(k, c);
  finish(k, c);
  return c;
}

ModelConfig ModelConfig::load(const std::filesystem::path& path) {
  return parse(files::read(path, files::kMaxConfigBytes, "config"), path.string());
}

const char* ModelConfig::family_name() const { return family ? family->name : "(none)"; }

int64_t ModelConfig::n_params() const { return parameter_count<int64_t>(*this); }  // parse() checked it fits

std::string ModelConfig::summary() const {
  std::ostringstream s;
  s << "family      " << family_name() << (attn_only ? " (attention only)" : "") << "\n"
    << "layers      " << n_layers << (parallel_residual ? " (parallel attention and MLP)" : "") << "\n"
    << "d_model     " << d_model << "\n"
    << "heads       " << n_heads << " x d_head " << d_head;
  if (n_kv_heads != n_heads) s << " (" << n_kv_heads << " key/value heads)";
  s << "\n";
  if (!attn_only) s << "d_mlp       " << d_mlp << " (" << nonlinearity_name(mlp_act) << (gated_mlp ? ", gated" : "") << ")\n";
  s << "vocab       " << vocab_size << "\n"
    << "context     " << n_ctx << "\n"
    << "norm        " << norm_name(norm) << ", eps " << norm_eps << (post_norms ? ", also after each sub-layer" : "")
    << "\n";
  s << "positions   " << (learned_positions ? "learned" : "");
  if (rotary_dims > 0) {
    s << (learned_positions ? " + " : "") << "rotary on " << rotary_dims << " of " << d_head << " dims, theta "
      << rope_theta;
    if (rope_scaling.kind == RopeScaling::Linear) s << ", linear scaling x" << rope_scaling.factor;
    if (rope_scaling.kind == RopeScaling::Llama3) s << ", llama3 scaling x" << rope_scaling.factor;
  }
  s << "\n";
  s << "attention   scores x " << attn_scale;
  if (attn_softcap > 0) s << ", soft-cap " << attn_softcap;
  if (window.size > 0) {
    s << ", sliding window " << window.size << " in layers";
    for (int L = 0, shown = 0; L < n_layers && L < 4096 && shown < 16; ++L)
      if (window.of(L)) s << (shown++ ? "," : " ") << L;
  }
  s << "\n";
  if (logit_softcap > 0) s << "logits      soft-cap " << logit_softcap << "\n";
  s << "tied head   " << (tie_embeddings ? "yes" : "no") << "\n"
    << "parameters  " << n_params() << "\n";
  return s.str();
}

}  // namespace pathpatch
