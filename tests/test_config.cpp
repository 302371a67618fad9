#include <catch2/catch.hpp>

#include "helpers.hpp"

namespace pp = pathpatch;

TEST_CASE("GPT-2 and Llama configs parse", "[config]") {
  auto g = pp::ModelConfig::load(pptest::golden("gpt2") / "config.json");
  CHECK(std::string(g.family_name()) == "gpt2");
  CHECK(g.d_mlp == 256);  // n_inner null -> 4 * n_embd
  CHECK(g.d_head == 16);
  auto l = pp::ModelConfig::load(pptest::golden("llama-gqa") / "config.json");
  CHECK(std::string(l.family_name()) == "llama");
  CHECK(l.n_kv_heads == 2);
  CHECK_FALSE(l.tie_embeddings);
}

TEST_CASE("bad configs are refused naming the key", "[config][refuse]") {
  auto msg = pptest::config_error;
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

TEST_CASE("configs the forwards cannot honour are refused naming the key", "[config][refuse]") {
  auto msg = [](const std::string& extra, bool llama) {
    const std::string base = llama ? R"({"model_type": "llama", "num_hidden_layers": 1, "hidden_size": 8,
        "num_attention_heads": 2, "intermediate_size": 8, "vocab_size": 5, "max_position_embeddings": 8)"
                                   : R"({"model_type": "gpt2", "n_layer": 1, "n_embd": 8, "n_head": 2,
        "vocab_size": 5, "n_positions": 8)";
    return pptest::config_error(base + extra + "}");
  };
  CHECK(msg("", false) == "(no error)");
  CHECK(msg("", true) == "(no error)");
  // A config class's default token ids outside a small vocabulary name no token: read as none.
  CHECK(msg(R"(, "bos_token_id": 50256, "eos_token_id": [50256, 2])", false) == "(no error)");
  CHECK(pp::ModelConfig::parse(R"({"model_type": "gpt2", "n_layer": 1, "n_embd": 8, "n_head": 2, "vocab_size": 5,
      "n_positions": 8, "bos_token_id": 50256, "eos_token_id": [3, 50256]})", "c").eos_token_id == 3);
  CHECK_THAT(msg(R"(, "bos_token_id": "<s>")", false), Catch::Contains("'bos_token_id' must be a token id"));
  CHECK_THAT(msg(R"(, "activation_function": "relu")", false), Catch::Contains("activation_function 'relu'"));
  CHECK_THAT(msg(R"(, "hidden_act": "relu")", true), Catch::Contains("hidden_act 'relu' is not supported"));
  CHECK(msg(R"(, "attention_bias": true, "mlp_bias": true, "hidden_act": "gelu")", true) == "(no error)");
  CHECK_THAT(msg(R"(, "rope_theta": 0)", true), Catch::Contains("rope_theta must be positive"));
  CHECK_THAT(msg(R"(, "rms_norm_eps": -1)", true), Catch::Contains("'rms_norm_eps' must be positive"));
  CHECK_THAT(msg(R"(, "rms_norm_eps": 1e-300)", true), Catch::Contains("outside what float32 holds"));
  CHECK_THAT(msg(R"(, "layer_norm_epsilon": 1e300)", false), Catch::Contains("outside what float32 holds"));
  CHECK(msg(R"(, "rope_scaling": {"type": "linear", "factor": 2})", true) == "(no error)");
  CHECK_THAT(msg(R"(, "rope_scaling": {"type": "dynamic", "factor": 2})", true),
             Catch::Contains("rope_scaling") && Catch::Contains("not supported"));
  CHECK_THAT(msg(R"(, "rope_scaling": {"rope_type": "linear"})", true), Catch::Contains("'factor'"));
  CHECK_THAT(msg(R"(, "scale_attn_by_inverse_layer_idx": true)", false),
             Catch::Contains("'scale_attn_by_inverse_layer_idx' is not supported"));
  CHECK_THAT(msg(R"(, "head_dim": 3)", true), Catch::Contains("must be even for rotary embeddings"));
}
