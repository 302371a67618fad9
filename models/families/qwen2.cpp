// Qwen2 / Qwen2.5 (Yang et al. 2024): Llama with biases on q, k and v, and a sliding window in the
// layers from max_window_layers on when use_sliding_window is set.
#include "models/families/llama.hpp"

namespace pathpatch {

namespace {

void configure(const ConfigKeys& k, ModelConfig& c) {
  llama::configure_common(k, c);
  c.qkv_bias = true;
  if (k.boolean_or({"use_sliding_window"}, false) && !k.is_null("sliding_window")) {
    c.window.size = k.integer_or({"sliding_window"}, 4096);
    c.window.first = k.integer_or({"max_window_layers"}, 28);
  }
  k.layer_types(c.n_layers, c.window);
}

}  // namespace

extern const Family kQwen2Family = {"qwen2", {"qwen2"}, configure, {"model."}, MatrixLayout::OutIn,
                                    FusedQKV::Blocks, llama::kNames};

}  // namespace pathpatch
