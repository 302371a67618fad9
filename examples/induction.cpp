// The induction circuit of the zoo's 2-layer attention-only GPT-2: attention patterns name a
// previous-token head and an induction head; path patching confirms that the first feeds the
// second's keys and the second writes the answer.
#include <cstdio>

#include <pathpatch/analysis.hpp>
#include <pathpatch/pathpatch.hpp>

namespace pp = pathpatch;

int main(int argc, char** argv) {
  pp::Model model = pp::load_model(argc > 1 ? argv[1] : PP_ZOO "/induction-gpt2");
  // [BOS] s s for 20 random tokens s; the corrupted copy changes the first s.
  pp::RepeatedTokens clean = pp::repeated_tokens(8, 20, 10000, 30000, /*seed=*/1, /*bos=*/50256);
  pp::Batch corrupt = pp::unrepeated_tokens(clean, 10000, 30000, 2);

  pp::Tensor prev = pp::previous_token_scores(model, clean.batch);  // [layer, head]
  pp::Tensor ind = pp::induction_scores(model, clean);
  for (int L = 0; L < model.config().n_layers; ++L)
    for (int h = 0; h < model.config().n_heads; ++h)
      std::printf("head %d.%d  previous-token %.2f  induction %.2f\n", L, h, prev.at({L, h}), ind.at({L, h}));

  // Loss on the repeated copy (positions first_repeat.. predict it) under path patching.
  std::vector<int> scored;
  for (int64_t t = clean.first_repeat(); t < clean.batch.seq - 1; ++t) scored.push_back(static_cast<int>(t));
  pp::Metric loss = pp::Metric::cross_entropy(scored);
  pp::SweepResult direct = pp::sweep_senders(model, clean.batch, corrupt, {pp::Receiver::logits()}, loss);
  std::printf("loss: clean %.2f, corrupted %.2f\n", direct.clean, direct.corrupted);
  for (int L = 0; L < model.config().n_layers; ++L)
    for (int h = 0; h < model.config().n_heads; ++h)
      std::printf("sender %d.%d -> logits: loss %.2f\n", L, h, direct.values.at({L, h}));

  // The layer-1 head whose direct path matters most is the induction head. Which layer-0 head
  // feeds its keys? Corrupt only the path from each layer-0 head into those keys.
  const int H = model.config().n_heads;
  int induction = 0;
  for (int h = 1; h < H; ++h)
    if (direct.values.at({1, h}) > direct.values.at({1, induction})) induction = h;
  pp::Receiver keys{pp::Receiver::K, 1, induction};
  pp::SweepResult to_keys = pp::sweep_senders(model, clean.batch, corrupt, {keys}, loss);
  for (int h = 0; h < H; ++h)
    std::printf("sender 0.%d -> keys of 1.%d: loss %.2f\n", h, induction, to_keys.values.at({0, h}));
}
