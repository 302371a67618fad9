#include <catch2/catch.hpp>

#include "helpers.hpp"

namespace pp = pathpatch;

TEST_CASE("GPT-2 and Llama configs parse", "[config]") {
  auto g = pp::ModelConfig::load(pptest::golden("gpt2") / "config.json");
  CHECK(g.family == pp::Family::Gpt2);
  CHECK(g.d_mlp == 256);  // n_inner null -> 4 * n_embd
  CHECK(g.d_head == 16);
  auto l = pp::ModelConfig::load(pptest::golden("llama-gqa") / "config.json");
  CHECK(l.family == pp::Family::Llama);
  CHECK(l.n_kv_heads == 2);
  CHECK_FALSE(l.tie_embeddings);
}

TEST_CASE("bad configs are refused naming the key", "[config][refuse]") {
  auto msg = [](const std::string& text) {
    try {
      pp::ModelConfig::parse(text, "config.json");
    } catch (const pp::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  CHECK_THAT(msg(R"({"n_layer": 2})"), Catch::Contains("model_type"));
  CHECK_THAT(msg(R"({"model_type": "bert"})"), Catch::Contains("'bert' is not supported"));
  CHECK_THAT(msg(R"({"model_type": "gpt2", "n_layer": 2, "n_head": 4, "vocab_size": 10, "n_positions": 8})"),
             Catch::Contains("'n_embd'"));
  CHECK_THAT(msg(R"({"model_type": "gpt2", "n_layer": 2, "n_embd": 10, "n_head": 4, "vocab_size": 10, "n_positions": 8})"),
             Catch::Contains("not a multiple"));
  CHECK_THAT(msg(R"({"model_type": "llama", "num_hidden_layers": 1, "hidden_size": 8, "num_attention_heads": 4,
                     "num_key_value_heads": 3, "intermediate_size": 8, "vocab_size": 5, "max_position_embeddings": 8})"),
             Catch::Contains("num_key_value_heads"));
  CHECK_THAT(msg(R"({"model_type": "gpt2", "n_layer": "two"})"), Catch::Contains("non-negative integer"));
  CHECK_THAT(msg("[1, 2]"), Catch::Contains("not a JSON object"));
  CHECK_THAT(msg("{"), Catch::Contains("not valid JSON"));
}
