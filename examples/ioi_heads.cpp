// Indirect object identification on the zoo's Llama: which heads carry the answer to the output,
// and what do they do with it? The model's card (models/zoo/ioi-llama/MODEL_CARD.md) labels heads
// 2.0 and 2.1 "S-suppression" from single-head measurements: they attend from the last position
// to the subject and lower its logit; it finds no name movers. Path patching checks that on the
// 300 prompts of the card's eval.jsonl:
//   1. each head's direct path to the logits reads the corrupted prompt (the subject's second
//      mention replaced by a third name): which heads matter?
//   2. for the two that matter most, the change in logit(IO) and in logit(S) apart (two metrics of
//      our own): a head that copies IO would lose logit(IO); one that suppresses S lets it rise;
//   3. where those heads look from the last position: the subject (S1 + S2) or IO.
// Every sentence the program prints about a head is decided by the numbers it prints.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include <pathpatch/pathpatch.hpp>
#include <pathpatch/prompts.hpp>
#include <viz/heatmap.hpp>

namespace pp = pathpatch;

namespace {

// The logit of each row's own token at the scored position: a metric of our own.
pp::Metric logit_of(const std::string& name, std::vector<int32_t> tokens) {
  return pp::Metric::custom(name, [tokens](const pp::Tensor& logits) {  // [B, 1, V]
    std::vector<float> out;
    for (int64_t b = 0; b < logits.size(0); ++b) out.push_back(logits.at({b, 0, tokens[b]}));
    return out;
  });
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : PP_ZOO "/ioi-llama";
  pp::Model model = pp::load_model(dir);
  pp::PromptSet p = pp::read_prompts(dir + "/eval.jsonl", model);
  const int64_t B = p.clean.size, T = p.clean.seq;
  auto cache = std::make_shared<pp::Cache>();
  pp::PathPatchingOptions o;
  o.cache = cache;

  // 1. Every head's direct path to the logits.
  pp::SweepResult diff = pp::sweep_senders(model, p.clean, p.corrupted, {pp::Receiver::logits()},
                                           pp::Metric::logit_diff(p.answer, p.wrong), o);
  std::printf("%lld prompts of eval.jsonl; logit(IO) - logit(S): clean %.2f, corrupted %.2f\n", (long long)B, diff.clean,
              diff.corrupted);
  std::printf("change when one head's direct path to the logits reads the corrupted prompt:\n");
  const int L = model.config().n_layers, H = model.config().n_heads;
  std::vector<std::pair<float, int>> order;
  for (int l = 0; l < L; ++l) {
    std::printf("layer %d:", l);
    for (int h = 0; h < H; ++h) {
      const float change = diff.values.at({l, h}) - diff.clean;
      std::printf("  %+7.3f", change);
      order.push_back({-std::fabs(change), l * H + h});
    }
    std::printf("\n");
  }
  std::sort(order.begin(), order.end());
  pp::viz::HeatmapOptions ho;
  ho.baseline = pp::viz::Baseline::Clean;
  pp::viz::write_sweep(diff, "ioi_heads.svg", ho);

  // 2. logit(IO) and logit(S) apart, through the same paths.
  pp::SweepResult io = pp::sweep_senders(model, p.clean, p.corrupted, {pp::Receiver::logits()},
                                         logit_of("logit(IO)", p.answer), o);
  pp::SweepResult s = pp::sweep_senders(model, p.clean, p.corrupted, {pp::Receiver::logits()},
                                        logit_of("logit(S)", p.wrong), o);

  // 3. Attention from the last position, with each row's positions of IO, S1 and S2 moved right by
  // its left padding.
  std::vector<int64_t> pos_io, pos_s1, pos_s2;
  std::ifstream in(dir + "/eval.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    const int64_t pad = T - static_cast<int64_t>(j["ids"].size());
    pos_io.push_back(pad + j["pos_io"].get<int64_t>());
    pos_s1.push_back(pad + j["pos_s1"].get<int64_t>());
    pos_s2.push_back(pad + j["pos_s2"].get<int64_t>());
  }
  pp::RunOptions ro;
  for (int l = 0; l < L; ++l) ro.interventions.push_back(pp::probe("pattern" + std::to_string(l)));

  std::printf("\nthe two heads that matter most, their direct effect on each logit, and where they look:\n");
  pp::Result plain = pp::forward(model, p.clean, ro);
  for (int k = 0; k < 2; ++k) {
    const int l = order[k].second / H, h = order[k].second % H;
    const pp::Tensor& pattern = plain.probe("pattern" + std::to_string(l));  // [B, H, T, T]
    double to_s = 0, to_io = 0;
    for (int64_t b = 0; b < B; ++b) {
      to_s += pattern.at({b, h, T - 1, pos_s1[b]}) + pattern.at({b, h, T - 1, pos_s2[b]});
      to_io += pattern.at({b, h, T - 1, pos_io[b]});
    }
    to_s /= B;
    to_io /= B;
    const float d_io = io.values.at({l, h}) - io.clean, d_s = s.values.at({l, h}) - s.clean;
    std::printf("head %d.%d: logit difference %+.2f; logit(IO) %+.2f, logit(S) %+.2f; attention to S1 + S2 %.2f, "
                "to IO %.2f\n",
                l, h, diff.values.at({l, h}) - diff.clean, d_io, d_s, to_s, to_io);
    const bool suppresses_s = d_s > 1 && std::fabs(d_io) < d_s / 2 && to_s > 0.5;
    const bool moves_io = d_io < -1 && to_io > 0.3;
    std::printf("  -> %s\n", suppresses_s ? "it suppresses the subject: with S2 corrupted, logit(S) rises through it "
                                            "(the card's S-suppression head)"
                             : moves_io   ? "it copies IO to the output (a name mover)"
                                          : "neither a clear S-suppressor nor a name mover");
  }
  std::printf("wrote ioi_heads.svg\n");
}
