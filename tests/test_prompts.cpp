// Prompt files (pathpatch/prompts.hpp): the zoo's eval.jsonl format read into batches and answer
// tokens, and every way a line can be wrong, named by file and line.
#include <catch2/catch.hpp>

#include "helpers.hpp"
#include "models/tokenizer.hpp"
#include "pathpatch/prompts.hpp"

namespace pp = pathpatch;

namespace {
const pp::Model& ioi() {
  static const pp::Model m = pp::load_model(pptest::source_dir() / "models" / "zoo" / "ioi-llama");
  return m;
}
}  // namespace

TEST_CASE("a prompt file gives batches, answers and texts; rows of different lengths are left-padded",
          "[prompts]") {
  const pp::Model& m = ioi();
  const std::string clean = "When Mary and John went to the store, John gave a drink to";
  const std::string text =
      "{\"clean\": \"" + clean + "\", \"corrupt\": \"When Mary and John went to the store, Anna gave a drink to\", "
      "\"answer\": \" Mary\", \"wrong\": \" John\", \"note\": \"ignored\"}\n"
      "\n"  // blank lines are skipped
      "{\"prompt\": \"Then Mary\", \"ids\": [1, 2, 3], \"corrupt_ids\": [1, 2, 4], \"answer_id\": 7, \"wrong_id\": 8}\n";
  pp::PromptSet p = pp::parse_prompts(text, "mem.jsonl", m);
  REQUIRE(p.clean.size == 2);
  const auto ids = m.tokenizer()->encode_prompt(clean);
  CHECK(p.clean.seq == static_cast<int64_t>(ids.size()));
  CHECK(p.clean.length(0) == p.clean.seq);
  CHECK(p.clean.length(1) == 3);                       // ids win over the text of the same line
  CHECK(p.clean.id(1, p.clean.seq - 1) == 3);          // left-padded: the last position is the last token
  CHECK(p.corrupted.id(1, p.clean.seq - 1) == 4);
  CHECK(p.clean.same_layout(p.corrupted));
  CHECK(p.answer == std::vector<int32_t>{pp::next_token(*m.tokenizer(), clean, " Mary"), 7});
  CHECK(p.wrong == std::vector<int32_t>{pp::next_token(*m.tokenizer(), clean, " John"), 8});
  CHECK(p.texts == std::vector<std::string>{clean, "Then Mary"});
  CHECK(p.lines == std::vector<size_t>{1, 3});
  CHECK(pp::parse_prompts(text, "mem.jsonl", m, 1).clean.size == 1);  // limit

  // The zoo's own file reads whole.
  pp::PromptSet zoo = pp::read_prompts(pptest::source_dir() / "models" / "zoo" / "ioi-llama" / "eval.jsonl", m);
  CHECK(zoo.clean.size == 300);
  CHECK(zoo.answer.size() == 300);
  CHECK(zoo.wrong.size() == 300);
}

TEST_CASE("prompt file refusals name the file and line", "[prompts][refuse]") {
  const pp::Model& m = ioi();
  auto error = [&](const std::string& text) {
    try {
      pp::parse_prompts(text, "p.jsonl", m);
    } catch (const pp::Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  const std::string good = "{\"ids\": [1, 2], \"corrupt_ids\": [1, 3], \"answer_id\": 5}\n";
  CHECK(error("") == "p.jsonl: no prompts (one JSON object per line)");
  CHECK(error(good + "{not json\n") == "p.jsonl:2: not a JSON object (one per line)");
  CHECK(error("[1, 2]\n") == "p.jsonl:1: not a JSON object (one per line)");
  CHECK_THAT(error("{\"ids\": [1, 2]}\n"), Catch::Contains("p.jsonl:1: no corrupted prompt"));
  CHECK_THAT(error("{\"ids\": [1, 2], \"corrupt_ids\": [1, 2, 3]}\n"),
             Catch::Contains("p.jsonl:1: the clean prompt has 2 tokens, the corrupted one 3"));
  CHECK_THAT(error("{\"ids\": [1, -2], \"corrupt_ids\": [1, 2]}\n"), Catch::Contains("p.jsonl:1: clean prompt -2 is not a token id"));
  CHECK_THAT(error("{\"ids\": \"1 2\", \"corrupt_ids\": [1, 2]}\n"),
             Catch::Contains("p.jsonl:1: clean prompt must be a non-empty list of token ids"));
  CHECK_THAT(error(good + "{\"ids\": [1, 2], \"corrupt_ids\": [1, 3]}\n"),
             Catch::Contains("p.jsonl:2: answer and wrong must be on every line or on none"));
  CHECK_THAT(error("{\"ids\": [1, 2], \"corrupt_ids\": [1, 3], \"answer\": \" Mary\"}\n"),
             Catch::Contains("p.jsonl:1: answer as text needs the clean prompt as text too (or answer_id)"));
  CHECK_THAT(error("{\"clean\": \"When Mary\", \"corrupt\": \"When Anna\", \"answer\": \" Mary and\"}\n"),
             Catch::Contains("p.jsonl:1:"));
  CHECK_THAT(error("{\"ids\": [1, 99999], \"corrupt_ids\": [1, 3]}\n"), Catch::Contains("p.jsonl (clean prompts)"));
  CHECK_THROWS_AS(pp::parse_prompts("{\"ids\": [1, 99999], \"corrupt_ids\": [1, 3]}\n", "p", m), pp::InputError);
  CHECK_THROWS_AS(pp::read_prompts("/nonexistent/prompts.jsonl", m), pp::IoError);
  // Text needs a tokenizer.
  CHECK_THAT(
      [&] {
        try {
          pp::parse_prompts("{\"clean\": \"a\", \"corrupt\": \"b\"}\n", "t.jsonl", pptest::model("gpt2-attn-only"));
        } catch (const pp::Error& e) {
          return std::string(e.what());
        }
        return std::string();
      }(),
      Catch::Contains("has no tokenizer"));
}
