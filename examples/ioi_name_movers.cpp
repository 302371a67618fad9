// Indirect object identification on the zoo's Llama: which heads move the indirect object's name
// to the output? Path patching each head's direct path to the logits on many prompts (the subject
// name corrupted) finds them; their attention from the last position points at the name.
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include <pathpatch/pathpatch.hpp>
#include <viz/heatmap.hpp>

namespace pp = pathpatch;

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : PP_ZOO "/ioi-llama";
  pp::Model model = pp::load_model(dir);
  // Held-out prompts of one template, shipped with the model: clean, corrupted, answer, wrong.
  std::vector<std::string> clean_texts, corrupt_texts;
  std::vector<int32_t> answer, wrong;
  std::ifstream in(dir + "/eval.jsonl");
  for (std::string line; std::getline(in, line) && clean_texts.size() < 16;) {
    auto j = nlohmann::json::parse(line);
    if (!clean_texts.empty() && model.encode({j["prompt"]}).seq != model.encode({clean_texts[0]}).seq) continue;
    clean_texts.push_back(j["prompt"]);
    corrupt_texts.push_back(j["corrupt"]);
    answer.push_back(j["answer_id"]);
    wrong.push_back(j["wrong_id"]);
  }
  pp::Batch clean = model.encode(clean_texts), corrupt = model.encode(corrupt_texts);
  pp::Metric metric = pp::Metric::normalized_logit_diff(answer, wrong);

  pp::SweepResult s = pp::sweep_senders(model, clean, corrupt, {pp::Receiver::logits()}, metric);
  std::printf("%zu prompts; normalised logit difference with each head's direct path corrupted (1 = unchanged):\n",
              clean_texts.size());
  for (int L = 0; L < model.config().n_layers; ++L) {
    std::printf("layer %d:", L);
    for (int h = 0; h < model.config().n_heads; ++h) std::printf("  %6.3f", s.values.at({L, h}));
    std::printf("\n");
  }
  pp::viz::write_sweep(s, "ioi_name_movers.svg");
  std::printf("wrote ioi_name_movers.svg\n");
}
