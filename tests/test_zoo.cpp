// The shipped zoo models do what their cards say, through the C++ forward: the induction model
// copies repeated sequences with a previous-token head and an induction head; the IOI model names
// the indirect object on held-out names and templates.
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "helpers.hpp"
#include "pathpatch/analysis.hpp"

namespace pp = pathpatch;

namespace {

std::filesystem::path zoo(const std::string& name) { return pptest::source_dir() / "models" / "zoo" / name; }

std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

}  // namespace

TEST_CASE("induction-gpt2: the repeated copy is predicted; its circuit shows in the patterns", "[zoo]") {
  pp::Model m = pp::load_model(zoo("induction-gpt2"));
  auto circuit = nlohmann::json::parse(std::ifstream(zoo("induction-gpt2") / "circuit.json"));
  // The shipped evaluation sequences, grouped by length so each group is one batch.
  std::map<size_t, std::vector<nlohmann::json>> by_length;
  for (const auto& j : read_jsonl(zoo("induction-gpt2") / "eval.jsonl")) by_length[j["ids"].size()].push_back(j);
  double first = 0, second = 0;
  int n = 0;
  for (const auto& [length, items] : by_length) {
    std::vector<std::vector<int32_t>> rows;
    for (const auto& j : items) rows.push_back(j["ids"].get<std::vector<int32_t>>());
    pp::Batch b = pp::Batch::from_rows(rows);
    const int64_t rep = items[0]["repeat_from"].get<int64_t>();  // first position of the second copy
    for (float x : pp::next_token_loss(m, b, 1, rep - 1)) first += x;
    for (float x : pp::next_token_loss(m, b, rep, b.seq - 1)) second += x;
    n += static_cast<int>(items.size());
  }
  first /= n;
  second /= n;
  INFO("loss on the first copy " << first << ", on the repeated copy " << second);
  CHECK(first > 5.0);
  CHECK(second < 0.5);

  pp::RepeatedTokens r = pp::repeated_tokens(16, 25, 10000, 30000, 7, 50256);
  pp::Tensor prev = pp::previous_token_scores(m, r.batch), ind = pp::induction_scores(m, r);
  const int pl = circuit["previous_token_head"][0], ph = circuit["previous_token_head"][1];
  const int il = circuit["induction_head"][0], ih = circuit["induction_head"][1];
  // The previous-token head the card names is the one of its layer; the induction head it names
  // attends as induction heads do (in this model every layer-1 head does, the named one most
  // strongly by path patching), and no layer-0 head does.
  CHECK(prev.at({pl, ph}) > 0.7f);
  for (int h = 0; h < m.config().n_heads; ++h) CHECK(prev.at({pl, h}) <= prev.at({pl, ph}));
  CHECK(ind.at({il, ih}) > 0.9f);
  for (int h = 0; h < m.config().n_heads; ++h) CHECK(ind.at({0, h}) < 0.1f);
}

TEST_CASE("ioi-llama: at least 95% top-1 on held-out names and templates", "[zoo]") {
  pp::Model m = pp::load_model(zoo("ioi-llama"));
  const auto items = read_jsonl(zoo("ioi-llama") / "eval.jsonl");
  REQUIRE(items.size() >= 200);
  int correct = 0, tokenized_alike = 0;
  for (const auto& j : items) {
    // Our sentencepiece wrapper gives the ids the training script used (BOS first, as HF does).
    std::vector<int32_t> ids = m.tokenizer()->encode_prompt(j["prompt"].get<std::string>());
    tokenized_alike += ids == j["ids"].get<std::vector<int32_t>>();
    pp::Result r = pp::forward(m, pp::Batch::from_rows({ids}));
    const int64_t T = static_cast<int64_t>(ids.size()), V = m.config().vocab_size;
    const float* last = r.logits.data() + (T - 1) * V;
    correct += std::max_element(last, last + V) - last == j["answer_id"].get<int64_t>();
  }
  CHECK(tokenized_alike == static_cast<int>(items.size()));
  const double accuracy = double(correct) / items.size();
  INFO("top-1 accuracy " << accuracy << " on " << items.size() << " held-out prompts");
  CHECK(accuracy >= 0.95);
}
