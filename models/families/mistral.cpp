// Mistral (Jiang et al. 2023): Llama with sliding-window attention in every layer.
#include "models/families/llama.hpp"

namespace pathpatch {

namespace {

void configure(const ConfigKeys& k, ModelConfig& c) {
  llama::configure_common(k, c);
  // MistralConfig's default window is 4096; null turns it off.
  c.window.size = k.is_null("sliding_window") ? 0 : k.integer_or({"sliding_window"}, 4096);
  k.layer_types(c.n_layers, c.window);
}

}  // namespace

extern const Family kMistralFamily = {"mistral", {"mistral"}, configure, {"model."}, MatrixLayout::OutIn,
                                      FusedQKV::Blocks, llama::kNames};

}  // namespace pathpatch
