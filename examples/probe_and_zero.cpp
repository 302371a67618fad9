// graphpatch's probe and zero: record an activation, then zero it and see what changes. Patches on
// one activation apply in order, so the probe placed first sees the value before it is zeroed.
#include <cstdio>

#include <pathpatch/pathpatch.hpp>

namespace pp = pathpatch;

int main(int argc, char** argv) {
  pp::Model model = pp::load_model(argc > 1 ? argv[1] : PP_ZOO "/ioi-llama");
  const char* text = "When Mary and John went to the store, John gave a drink to";
  pp::Batch prompt = model.encode({text});
  const int32_t mary = pp::next_token(*model.tokenizer(), text, " Mary");

  const std::string mlp = "blocks.0.mlp.hook_post";
  pp::RunOptions options;
  options.interventions = {pp::probe(mlp, "before"), pp::zero(mlp), pp::probe(mlp, "after")};
  pp::Result zeroed = pp::forward(model, prompt, options);
  pp::Result plain = pp::forward(model, prompt);

  const pp::Tensor &before = zeroed.probe("before"), &after = zeroed.probe("after");
  double norm_before = 0, norm_after = 0;
  for (int64_t i = 0; i < before.numel(); ++i) {
    norm_before += before.data()[i] * before.data()[i];
    norm_after += after.data()[i] * after.data()[i];
  }
  const int64_t last = prompt.seq - 1;
  std::printf("%s %s: squared norm %.1f before the zero patch, %.1f after\n", mlp.c_str(),
              pp::to_string(before.shape()).c_str(), norm_before, norm_after);
  std::printf("logit( Mary) at the last position: %.3f plain, %.3f with layer 0's MLP zeroed\n",
              plain.logits.at({0, last, mary}), zeroed.logits.at({0, last, mary}));
}
