// libFuzzer target: ModelConfig::parse on arbitrary text. ConfigError is the documented refusal;
// any other exception, a crash or a sanitizer report is a finding. An accepted config must hold
// the invariants the model code relies on, and summary() (with its parameter count) must not overflow.
#include <cstdint>
#include <string>

#include "graph/error.hpp"
#include "models/config.hpp"

namespace pp = pathpatch;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    pp::ModelConfig c = pp::ModelConfig::parse(text, "fuzz/config.json");
    if (c.n_layers <= 0 || c.d_model <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 || c.d_head <= 0 ||
        c.vocab_size <= 0 || c.n_ctx <= 0 || c.n_heads % c.n_kv_heads != 0 || (!c.attn_only && c.d_mlp <= 0) ||
        !(c.norm_eps > 0) || (c.rotary_dims > 0 && !(c.rope_theta > 0)) || c.rotary_dims % 2 != 0 ||
        c.rotary_dims > c.d_head || !(c.attn_scale > 0) || c.window.size < 0 || c.family == nullptr)
      __builtin_trap();
    if (c.n_groups() <= 0) __builtin_trap();
    volatile size_t n = c.summary().size();
    (void)n;
  } catch (const pp::ConfigError&) {
  }
  return 0;
}
