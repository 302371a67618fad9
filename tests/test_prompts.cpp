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

// The message of the error reading `text` as the prompt file `name`, or "(no error)".
std::string error_reading(const std::string& text, const std::string& name) {
  try {
    pp::parse_prompts(text, name, ioi());
  } catch (const pp::Error& e) {
    return std::string(e.what());
  }
  return std::string("(no error)");
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
  auto error = [](const std::string& text) { return error_reading(text, "p.jsonl"); };
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

TEST_CASE("prompt filters keep the lines whose fields hold the values", "[prompts]") {
  const pp::Model& m = ioi();
  const std::string text =
      "{\"ids\": [1, 2, 3], \"corrupt_ids\": [1, 2, 4], \"template\": \"a\", \"order\": \"ABBA\", \"n\": 3}\n"
      "{\"ids\": [1, 5], \"corrupt_ids\": [1, 6], \"template\": \"b\", \"order\": \"ABBA\", \"n\": 2}\n"
      "{\"ids\": [1, 7, 8], \"corrupt_ids\": [1, 7, 9], \"template\": \"a\", \"order\": \"BABA\", \"n\": 3}\n"
      "{\"ids\": [1, 9, 9], \"corrupt_ids\": [1, 9, 8]}\n";  // no template: no filter keeps it
  const pp::PromptSet a = pp::parse_prompts(text, "mem.jsonl", m, 0, {{"template", "a"}});
  CHECK(a.lines == std::vector<size_t>{1, 3});
  CHECK(a.clean.seq == 3);
  CHECK(pp::parse_prompts(text, "mem.jsonl", m, 0, {{"template", "a"}, {"order", "BABA"}}).lines ==
        std::vector<size_t>{3});
  CHECK(pp::parse_prompts(text, "mem.jsonl", m, 0, {{"n", "2"}}).lines == std::vector<size_t>{2});  // a number
  CHECK(pp::parse_prompts(text, "mem.jsonl", m, 1, {{"template", "a"}}).lines == std::vector<size_t>{1});
  CHECK_THROWS_WITH(pp::parse_prompts(text, "mem.jsonl", m, 0, {{"template", "c"}, {"order", "ABBA"}}),
                    Catch::Contains("mem.jsonl: no line has template=c, order=ABBA"));
  CHECK(pp::PromptFilter::parse("template=heldout_0").value == "heldout_0");
  CHECK(pp::PromptFilter::parse("note=a=b").value == "a=b");
  CHECK_THROWS_WITH(pp::PromptFilter::parse("template"), Catch::Contains("expected FIELD=VALUE"));
  // The zoo's file: one template and order puts IO, S1 and S2 in one column each.
  const pp::PromptSet zoo = pp::read_prompts(pptest::source_dir() / "models" / "zoo" / "ioi-llama" / "eval.jsonl", m,
                                             0, {{"template", "heldout_0"}, {"order", "ABBA"}});
  CHECK(zoo.clean.size == 42);
  CHECK(zoo.clean.seq == 15);
  for (int64_t b = 0; b < zoo.clean.size; ++b) CHECK(zoo.clean.length(b) == 15);
}

TEST_CASE("named positions: the file's pos_NAME fields as columns of the padded batch", "[prompts]") {
  const pp::Model& m = ioi();
  const std::string text =
      "{\"ids\": [1, 2, 3, 4], \"corrupt_ids\": [1, 2, 3, 5], \"pos_s2\": 2, \"pos_io\": 1, \"t\": \"a\"}\n"
      "{\"ids\": [1, 6, 7], \"corrupt_ids\": [1, 6, 8], \"pos_s2\": 1, \"pos_io\": 2, \"t\": \"b\"}\n";
  const pp::PromptSet p = pp::parse_prompts(text, "mem.jsonl", m);
  REQUIRE(p.positions.size() == 2);
  CHECK(p.positions.at("s2") == std::vector<int64_t>{2, 2});  // row 1 is left-padded by one
  CHECK(p.positions.at("io") == std::vector<int64_t>{1, 3});
  CHECK(p.column("s2") == 2);
  CHECK_THROWS_WITH(p.column("io"), Catch::Contains("position 'io' is column 1 in 1 rows, column 3 in 1 rows") &&
                                        Catch::Contains("--where template="));
  CHECK_THROWS_WITH(p.column("s1"), Catch::Contains("the prompt file names the positions io, s2"));
  CHECK(pp::parse_prompts(text, "mem.jsonl", m, 0, {{"t", "b"}}).column("io") == 2);
  auto error_of = [](const std::string& t) { return error_reading(t, "mem.jsonl"); };
  CHECK_THAT(error_of("{\"ids\": [1, 2], \"corrupt_ids\": [1, 3], \"pos_s2\": 2}"),
             Catch::Contains("mem.jsonl:1: pos_s2 2 is past the prompt's 2 tokens"));
  CHECK_THAT(error_of("{\"ids\": [1, 2], \"corrupt_ids\": [1, 3], \"pos_s2\": \"x\"}"),
             Catch::Contains("pos_s2 must be a position (an integer from 0)"));
  CHECK_THAT(error_of("{\"ids\": [1, 2], \"corrupt_ids\": [1, 3], \"pos_s2\": 1}\n{\"ids\": [1, 2], \"corrupt_ids\": [1, 3]}"),
             Catch::Contains("mem.jsonl:2: pos_s2 must be on every line or on none"));
  CHECK_THAT(error_of("{\"ids\": [1, 2], \"corrupt_ids\": [1, 3]}\n{\"ids\": [1, 2], \"corrupt_ids\": [1, 3], \"pos_s2\": 1}"),
             Catch::Contains("mem.jsonl:2: pos_s2 must be on every line or on none"));
  // The zoo's file: IO, S1 and S2 are one column each within one template and name order.
  const pp::PromptSet zoo = pp::read_prompts(pptest::source_dir() / "models" / "zoo" / "ioi-llama" / "eval.jsonl", m,
                                             0, {{"template", "heldout_0"}, {"order", "ABBA"}});
  CHECK(zoo.column("s2") == 10);
  CHECK(zoo.column("io") == 2);
  for (int64_t b = 0; b < zoo.clean.size; ++b) CHECK(zoo.clean.id(b, 10) == zoo.clean.id(b, 4));  // S2 repeats S1
}
