// The model families (models/families/): what each reads from its config.json, and the engine's
// invariants on every one of them (no split equals the plain forward bit for bit, a patch changes
// nothing before its position, rules equal their lambda form), plus the parallel residual's path
// semantics (graph/path.hpp). Their activations and patching results against the independent
// reference are in test_golden.cpp and test_patching_golden.cpp.
#include <catch2/catch.hpp>

#include "helpers.hpp"
#include "models/checkpoint.hpp"
#include "models/family.hpp"

namespace pp = pathpatch;

namespace {

// Every golden checkpoint, one or more per family.
const char* const kFolders[] = {"gpt2",    "gpt2-untied", "gpt2-attn-only",  "llama-gqa", "llama3",
                                "mistral", "qwen2",       "gemma2",          "pythia",    "neox-sequential",
                                "gpt-neo"};

// Inputs that agree before position 4.
pp::Batch clean() { return pp::Batch::from_rows({{3, 14, 15, 92, 65, 35, 89}, {7, 7, 1, 2, 3, 4, 5}}); }
pp::Batch corrupt() { return pp::Batch::from_rows({{3, 14, 15, 92, 11, 35, 89}, {7, 7, 1, 2, 9, 4, 5}}); }

// Rows [0, p) of two [B, T, D] tensors are bit-equal.
bool equal_before(const pp::Tensor& a, const pp::Tensor& b, int64_t p) {
  const int64_t B = a.size(0), T = a.size(1), D = a.size(2);
  for (int64_t i = 0; i < B; ++i)
    for (int64_t t = 0; t < p && t < T; ++t)
      for (int64_t d = 0; d < D; ++d)
        if (a.at({i, t, d}) != b.at({i, t, d})) return false;
  return true;
}

}  // namespace

TEST_CASE("each family reads its config.json into the generic description", "[families][config]") {
  auto cfg = [](const char* folder) { return pptest::model(folder).config(); };
  const pp::ModelConfig pythia = cfg("pythia");
  CHECK(std::string(pythia.family_name()) == "gpt_neox");
  CHECK(pythia.parallel_residual);
  CHECK(pythia.rotary_dims == 4);  // rotary_pct 0.25 of head_dim 16
  CHECK(pythia.mlp_act == pp::Nonlinearity::GeluErf);
  CHECK(pythia.qkv_bias);
  CHECK_FALSE(pythia.tie_embeddings);
  const pp::ModelConfig seq = cfg("neox-sequential");
  CHECK_FALSE(seq.parallel_residual);
  CHECK(seq.rotary_dims == 16);

  const pp::ModelConfig neo = cfg("gpt-neo");
  CHECK(std::string(neo.family_name()) == "gpt_neo");
  CHECK(neo.attn_scale == 1.0f);
  CHECK(neo.learned_positions);
  CHECK(neo.window.of(0) == 0);  // attention_types: global, local
  CHECK(neo.window.of(1) == 4);
  CHECK_FALSE(neo.qkv_bias);
  CHECK(neo.o_bias);

  const pp::ModelConfig gemma = cfg("gemma2");
  CHECK(std::string(gemma.family_name()) == "gemma2");
  CHECK(gemma.norm == pp::Norm::RMSNormPlusOne);
  CHECK(gemma.post_norms);
  CHECK(gemma.d_head == 32);  // not hidden_size / heads = 16
  CHECK(gemma.attn_scale == Approx(1 / std::sqrt(24.0)));
  CHECK(gemma.attn_softcap == 2.0f);
  CHECK(gemma.logit_softcap == 3.0f);
  CHECK(gemma.embed_scale == 8.0f);
  CHECK(gemma.window.of(0) == 4);  // even layers slide
  CHECK(gemma.window.of(1) == 0);
  CHECK(gemma.gated_mlp);
  CHECK(gemma.mlp_act == pp::Nonlinearity::GeluTanh);

  CHECK(cfg("mistral").window.of(0) == 4);
  CHECK(cfg("mistral").window.of(1) == 4);
  CHECK(cfg("qwen2").qkv_bias);
  CHECK_FALSE(cfg("qwen2").o_bias);
  CHECK(cfg("qwen2").window.of(1) == 0);  // use_sliding_window false
  CHECK(cfg("llama3").rope_scaling.kind == pp::RopeScaling::Llama3);
  CHECK(cfg("llama3").rope_scaling.factor == 8.0);
  CHECK_FALSE(cfg("gpt2-untied").tie_embeddings);
  CHECK(pptest::model("gpt2-untied").unembedding().storage_id() != nullptr);

  // The generic description, not the family, decides the graph: a parallel block has no resid_mid.
  CHECK(pptest::model("pythia").graph().lookup_activation("blocks.0.hook_resid_mid") < 0);
  CHECK(pptest::model("neox-sequential").graph().lookup_activation("blocks.0.hook_resid_mid") >= 0);
  CHECK(pptest::model("gemma2").graph().lookup_activation("blocks.1.ln2_post.hook_normalized") >= 0);
  CHECK(pptest::model("gpt-neo").graph().lookup_activation("blocks.1.attn.hook_rot_q") < 0);
}

TEST_CASE("every family refuses, naming the key, what its forward cannot compute", "[families][config][refuse]") {
  auto msg = pptest::config_error;
  const std::string neox = R"({"model_type": "gpt_neox", "num_hidden_layers": 2, "hidden_size": 8,
      "num_attention_heads": 2, "intermediate_size": 16, "vocab_size": 10, "max_position_embeddings": 8)";
  CHECK(msg(neox + R"(, "rotary_pct": 0.5})") == "(no error)");
  CHECK_THAT(msg(neox + R"(, "rotary_pct": 0.5, "rope_scaling": {"type": "dynamic", "factor": 2}})"),
             Catch::Contains("rope_scaling"));
  CHECK_THAT(msg(neox + R"(, "rotary_pct": 0.5, "hidden_act": "relu"})"), Catch::Contains("hidden_act 'relu' is not supported"));
  CHECK_THAT(msg(neox + R"(, "rotary_pct": 0.3})"), Catch::Contains("must be even"));
  const std::string neo = R"({"model_type": "gpt_neo", "num_layers": 2, "hidden_size": 8, "num_heads": 2,
      "vocab_size": 10, "max_position_embeddings": 8)";
  CHECK(msg(neo + R"(, "attention_types": [[["global", "local"], 1]]})") == "(no error)");
  CHECK_THAT(msg(neo + R"(, "attention_types": [[["global", "local"], 2]]})"), Catch::Contains("attention_types"));
  CHECK_THAT(msg(neo + R"(, "attention_types": [[["global", "sparse"], 1]]})"), Catch::Contains("attention_types"));
  const std::string gemma = R"({"model_type": "gemma2", "num_hidden_layers": 2, "hidden_size": 8,
      "num_attention_heads": 2, "head_dim": 4, "intermediate_size": 16, "vocab_size": 10, "max_position_embeddings": 8)";
  CHECK(msg(gemma + R"(, "attn_logit_softcapping": null, "final_logit_softcapping": null})") == "(no error)");
  CHECK(pp::ModelConfig::parse(gemma + R"(, "attn_logit_softcapping": null})", "c").attn_softcap == 0);
  CHECK(pp::ModelConfig::parse(gemma + "}", "c").attn_softcap == 50.0f);  // Gemma2Config's default
  CHECK_THAT(msg(gemma + R"(, "layer_types": ["sliding_attention"]})"), Catch::Contains("layer_types"));
  CHECK_THAT(msg(gemma + R"(, "query_pre_attn_scalar": 0})"), Catch::Contains("query_pre_attn_scalar"));
  CHECK_THAT(msg(R"({"model_type": "mixtral"})"), Catch::Contains("'mixtral' is not supported") &&
                                                      Catch::Contains("gpt_neox") && Catch::Contains("gemma2"));
}

TEST_CASE("on every family, no split and a constant input equal the plain forward bit for bit", "[families][engine]") {
  for (const char* folder : kFolders) {
    INFO(folder);
    const pp::Model& m = pptest::model(folder);
    auto split_everything = [](const pp::Path& p) {
      const pp::PathName& n = p.last();
      const bool attention = n.kind == pp::PathName::Sublayer && n.block == pp::Block::Attn;
      return attention || n.kind == pp::PathName::Residual || n.kind == pp::PathName::Head ? pp::Split::Edges
                                                                                            : pp::Split::None;
    };
    for (int input : {0, 1}) {
      const pp::Tensor plain = pp::forward(m, input ? corrupt() : clean()).hidden;
      auto which = [input](const pp::Path&) { return input; };
      CHECK(pp::bit_equal(pp::run(m, {clean(), corrupt()}, which, pptest::no_split).hidden, plain));
      pp::RunOptions budget;
      budget.path_budget = 100'000'000;
      CHECK(pp::bit_equal(pp::run(m, {clean(), corrupt()}, which, split_everything, budget).hidden, plain));
    }
  }
}

TEST_CASE("on every family, patching position p changes nothing before p", "[families][engine]") {
  for (const char* folder : kFolders) {
    INFO(folder);
    const pp::Model& m = pptest::model(folder);
    const pp::Tensor plain = pp::forward(m, clean()).hidden;
    // Only position 5's row of layer 1's attention input reads the corrupted prompt.
    auto branch = [](const pp::Path& p) {
      return p.back() == "a1" ? pp::Split::Edges : p.back() == "a1.head" ? pp::Split::Positions : pp::Split::None;
    };
    pp::Result r = pp::run(m, {clean(), corrupt()}, [](const pp::Path& p) { return p.contains("a1.head.pos5") ? 1 : 0; },
                           branch);
    CHECK(equal_before(r.hidden, plain, 5));
    CHECK_FALSE(pp::bit_equal(r.hidden, plain));
    pp::RunOptions patch;
    patch.interventions = {pp::replace("blocks.1.hook_resid_pre", 1, {{}, {5}})};
    pp::Result a = pp::run(m, {clean(), corrupt()}, [](const pp::Path&) { return 0; }, pptest::no_split, patch);
    CHECK(equal_before(a.hidden, plain, 5));
    CHECK_FALSE(pp::bit_equal(a.hidden, plain));
  }
}

TEST_CASE("on every family, path rules and their lambda form trace the same experiment", "[families][rules]") {
  for (const char* folder : kFolders) {
    INFO(folder);
    const pp::Model& m = pptest::model(folder);
    for (const char* rule : {"ln_final (f* f*.head)* a0 a0.head a0.head1", "f1.head ... a0.head2.k", "f0.head.pos5"}) {
      if (!m.graph().has_mlp() && std::string(rule).find("f") != std::string::npos) continue;
      INFO(rule);
      pp::PathRules rules;
      rules.add(rule, 1);
      pp::RunOptions opt;
      opt.cache = std::make_shared<pp::Cache>();
      pp::Result by_rules = pp::run(m, {clean(), corrupt()}, rules, opt);
      pp::CompiledRules compiled(m, clean().seq, rules);
      pp::Result by_lambdas = pp::run(m, {clean(), corrupt()}, compiled.which(), compiled.branch(), opt);
      CHECK(by_rules.root == by_lambdas.root);
      CHECK(pp::bit_equal(by_rules.hidden, by_lambdas.hidden));
    }
  }
}

TEST_CASE("parallel residual: an MLP reads the residual entering its layer, on its attention's path", "[families][engine]") {
  const pp::Model& m = pptest::model("pythia");
  // fL split: its MLP's path goes straight to the node before aL. Layer 1's MLP reading the
  // corrupted prompt is patching its input, ln2, with the corrupted run's.
  auto split_f1 = [](const pp::Path& p) { return p.back() == "f1" ? pp::Split::Edges : pp::Split::None; };
  pp::Result mlp_input = pp::run(m, {clean(), corrupt()}, [](const pp::Path& p) { return p.contains("f1.head") ? 1 : 0; },
                                 split_f1);
  pp::RunOptions ln2;
  ln2.interventions = {pp::replace("blocks.1.ln2.hook_normalized", 1)};
  pp::Result patched = pp::run(m, {clean(), corrupt()}, [](const pp::Path&) { return 0; }, pptest::no_split, ln2);
  INFO("max |diff| " << pp::max_abs_diff(mlp_input.hidden, patched.hidden));
  CHECK(pp::max_abs_diff(mlp_input.hidden, patched.hidden) < 1e-6f);
  CHECK_FALSE(pp::bit_equal(mlp_input.hidden, pp::forward(m, clean()).hidden));
  // The MLP's path passes no aL: a sender at a1 never reaches layer 1's MLP, only through the
  // residual. Reading `a1` on the MLP's path would change nothing.
  pp::Result via_a1 = pp::run(m, {clean(), corrupt()},
                              [](const pp::Path& p) { return p.contains("f1.head") && p.contains("a1") ? 1 : 0; }, split_f1);
  CHECK(pp::bit_equal(via_a1.hidden, pp::forward(m, clean()).hidden));
  // fL not split: the MLP reads what aL's residual edge read. With a1 split, its residual edge
  // reading the corrupted prompt and its attention the clean one, the MLP reads the corrupted
  // residual: the corrupted run with layer 1's attention output patched in from the clean one.
  auto split_a1 = [](const pp::Path& p) { return p.back() == "a1" ? pp::Split::Edges : pp::Split::None; };
  pp::Result residual = pp::run(m, {clean(), corrupt()}, [](const pp::Path& p) { return p.contains("a1") ? 0 : 1; },
                                split_a1);
  pp::RunOptions attn_out;
  attn_out.interventions = {pp::replace("blocks.1.hook_attn_out", 0)};
  pp::Result expected = pp::run(m, {clean(), corrupt()}, [](const pp::Path&) { return 1; }, pptest::no_split, attn_out);
  CHECK(pp::max_abs_diff(residual.hidden, expected.hidden) < 1e-6f);
  CHECK(pp::max_abs_diff(residual.hidden, pp::forward(m, corrupt()).hidden) > 1e-4f);
}

TEST_CASE("parallel residual: tracing a deep model without splits visits each node once", "[families][engine]") {
  // Both sub-layers of a block read the residual entering it: walked naively, every layer would
  // double the paths to the embeddings.
  const pp::ModelConfig c = pp::ModelConfig::parse(
      R"({"model_type": "gpt_neox", "num_hidden_layers": 24, "hidden_size": 8, "num_attention_heads": 2,
          "rotary_pct": 0.5, "intermediate_size": 16, "vocab_size": 10, "max_position_embeddings": 8})", "deep");
  pp::Model m(c, pp::Checkpoint::random(c, 5));
  pp::Batch a = pp::Batch::from_rows({{1, 2, 3}}), b = pp::Batch::from_rows({{1, 4, 3}});
  pp::RunOptions opt;
  opt.path_budget = 1000;
  pp::Result r = pp::run(m, {a, b}, [](const pp::Path&) { return 0; }, pptest::no_split, opt);
  CHECK(r.stats.node_visits == 2u * 24 + 2);  // aL and fL per layer, emb, ln_final
  CHECK(pp::bit_equal(r.hidden, pp::forward(m, a).hidden));
}
