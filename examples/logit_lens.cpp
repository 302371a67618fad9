// Reading the residual stream of the zoo's IOI model in the unembedding's terms: the logit lens
// (what each layer's stream already says), direct logit attribution (which parts write the
// answer), and greedy generation with the parts that write it silenced.
#include <algorithm>
#include <cstdio>

#include <pathpatch/pathpatch.hpp>
#include <pathpatch/prompts.hpp>

namespace pp = pathpatch;

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : PP_ZOO "/ioi-llama";
  pp::Model model = pp::load_model(dir);
  const pp::PromptSet set = pp::read_prompts(dir + "/eval.jsonl", model, 100);
  const pp::Metric metric = pp::Metric::logit_diff(set.answer, set.wrong);

  // The logit lens: the mean logit difference (answer - subject) read after each layer.
  const pp::LogitLens lens = pp::logit_lens(model, set.clean);
  const pp::Tensor scores = lens.score(model, metric);  // [readings, rows]
  std::printf("logit lens over %lld prompts, logit(answer) - logit(subject):\n", static_cast<long long>(set.clean.size));
  for (int64_t r = 0; r < lens.readings(); ++r) {
    double mean = 0;
    for (int64_t b = 0; b < set.clean.size; ++b) mean += scores.at({r, b}) / set.clean.size;
    std::printf("  %-12s %+7.3f\n", lens.labels[r].c_str(), mean);
  }

  // Direct logit attribution: the parts of the final stream, largest shares first.
  const pp::LogitAttribution dla = pp::direct_logit_attribution(model, set.clean, set.answer, set.wrong);
  std::vector<size_t> order(dla.components.size());
  for (size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return std::abs(dla.values.data()[a]) > std::abs(dla.values.data()[b]); });
  double total = 0;
  for (float t : dla.total) total += t / dla.total.size();
  std::printf("direct logit attribution of the mean logit difference %.3f (the shares sum to it):\n", total);
  for (size_t i = 0; i < 4; ++i)
    std::printf("  %-6s %+7.3f\n", dla.components[order[i]].name().c_str(), dla.values.data()[order[i]]);

  // Greedy continuations, plain and with the two layer-2 heads that write the answer silenced.
  const pp::Batch prompt = model.encode({"When Mary and John went to the store, John gave a drink to"});
  pp::RunOptions silenced;
  silenced.interventions = {pp::zero("blocks.2.attn.hook_z", {{0, 1}, {}})};
  const pp::Generation plain = pp::generate(model, prompt, 2), without = pp::generate(model, prompt, 2, silenced);
  std::printf("generation: '%s' plain, '%s' with heads 2.0 and 2.1 zeroed\n",
              model.tokenizer()->decode(plain.tokens[0]).c_str(), model.tokenizer()->decode(without.tokens[0]).c_str());
}
