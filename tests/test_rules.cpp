// Path rules: patterns compiled to a minimised automaton; splits derived where rules tell paths
// apart; cost bounded by nodes x states.
#include <catch2/catch.hpp>

#include "helpers.hpp"
#include "models/checkpoint.hpp"
#include "pathpatch/rules.hpp"

namespace pp = pathpatch;

namespace {

pp::Batch clean() { return pp::Batch::from_rows({{3, 14, 15, 92, 65, 35, 89}}); }
pp::Batch corrupt() { return pp::Batch::from_rows({{3, 14, 15, 92, 11, 35, 89}}); }

// The rule run and the lambda form of the same rules build the same provenance (same root id).
void check_same_as_lambdas(const pp::Model& m, const pp::PathRules& rules) {
  auto cache = std::make_shared<pp::Cache>();
  pp::RunOptions opt;
  opt.cache = cache;
  pp::Result by_rules = pp::run(m, {clean(), corrupt()}, rules, opt);
  pp::CompiledRules compiled(m, clean().seq, rules);
  pp::Result by_lambdas = pp::run(m, {clean(), corrupt()}, compiled.which(), compiled.branch(), opt);
  CHECK(by_rules.root == by_lambdas.root);
  CHECK(pp::bit_equal(by_rules.hidden, by_lambdas.hidden));
}

}  // namespace

TEST_CASE("rules reproduce hand-written lambda experiments", "[rules]") {
  for (const char* name : {"gpt2", "llama-gqa"}) {
    const pp::Model& m = pptest::model(name);
    // nano's README example: attention layer 1 reads the corrupted input.
    pp::Result lambdas = pp::run(m, {clean(), corrupt()}, [](const pp::Path& p) { return p.contains("a1") ? 1 : 0; },
                                 [](const pp::Path& p) { return p.back() == "a1" ? pp::Split::Edges : pp::Split::None; });
    pp::Result rules = pp::run(m, {clean(), corrupt()}, pp::PathRules().add("a1 a1.head", 1));
    CHECK(pp::bit_equal(lambdas.hidden, rules.hidden));
    check_same_as_lambdas(m, pp::PathRules().add("a1 a1.head", 1));
    check_same_as_lambdas(m, pp::PathRules().add("ln_final a1 a1.head a1.head2", 1));
    check_same_as_lambdas(m, pp::PathRules().add("a1.head1.k", 1).add("f0.head.pos4", 1));
    check_same_as_lambdas(m, pp::PathRules().add("ln_final (f* f*.head)* a0 a0.head a0.head3", 1));
    check_same_as_lambdas(m, pp::PathRules().add("a1.head.pos6", 0).otherwise(1));
  }
}

TEST_CASE("rules that match nothing change nothing; a default input applies to every path", "[rules]") {
  const pp::Model& m = pptest::model("gpt2");
  pp::Tensor c = pp::forward(m, clean()).hidden, k = pp::forward(m, corrupt()).hidden;
  pp::Result none = pp::run(m, {clean(), corrupt()}, pp::PathRules());
  CHECK(pp::bit_equal(none.hidden, c));
  CHECK(none.stats.steps == 12);  // no split: the plain forward's steps
  CHECK(pp::bit_equal(pp::run(m, {clean(), corrupt()}, pp::PathRules().otherwise(1)).hidden, k));
  CHECK(pp::bit_equal(pp::run(m, {clean(), corrupt()}, pp::PathRules().add("emb", 1)).hidden, k));
}

TEST_CASE("bad rules are refused with what and where", "[rules][refuse]") {
  const pp::Model& m = pptest::model("gpt2");
  auto error_of = [&](const std::string& pattern) {
    try {
      pp::run(m, {clean(), corrupt()}, pp::PathRules().add(pattern, 1));
    } catch (const pp::RuleError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  CHECK_THAT(error_of("a9.head"), Catch::Contains("'a9.head' matches no path name") && Catch::Contains("closest"));
  CHECK_THAT(error_of("(a1 | f1"), Catch::Contains("missing ')'"));
  CHECK_THAT(error_of("a1 )"), Catch::Contains("unexpected ')'"));
  CHECK_THAT(error_of("a1.head2 ... a1.head.pos3"), Catch::Contains("(no error)"));
  CHECK_THAT(error_of("a1 a1.head a1.head2"), Catch::Contains("(no error)"));
  // Heads and positions of one sub-layer at once.
  try {
    pp::run(m, {clean(), corrupt()}, pp::PathRules().add("a1.head2", 1).add("a1.head.pos3", 1));
    FAIL("expected a RuleError");
  } catch (const pp::RuleError& e) {
    CHECK_THAT(e.what(), Catch::Contains("both the heads and the positions of a1.head"));
  }
  CHECK_THROWS_AS(pp::run(m, {clean(), corrupt()}, pp::PathRules().add("a1", 2)), pp::RuleError);
}

namespace {

// A random 12-layer GPT-2 in memory: deep enough that lambdas could not walk its paths.
pp::Model deep_model() {
  pp::ModelConfig c = pp::ModelConfig::parse(
      R"({"model_type":"gpt2","n_layer":12,"n_embd":16,"n_head":4,"n_positions":8,"vocab_size":20})", "deep");
  return pp::Model(c, pp::Checkpoint::random(c, 7));
}

}  // namespace

TEST_CASE("rules evaluate experiments whose lambda form walks more than 1e9 paths", "[rules]") {
  pp::Model m = deep_model();
  pp::Batch a = pp::Batch::from_rows({{1, 2, 3, 4, 5}}), b = pp::Batch::from_rows({{1, 2, 9, 4, 5}});
  // Every path through a key input of any head at any layer reads b: every residual, every head and
  // every q/k/v edge must split. Per layer a path has 1 + 4 x 3 routes through attention and 2
  // through the MLP block: 26^12 ~ 1e17 paths.
  pp::PathRules rules;
  rules.add("a*.head*.k", 1);
  pp::Result r = pp::run(m, {a, b}, rules);
  pp::CompiledRules compiled(m, a.seq, rules);
  CHECK(compiled.states() <= 3);
  CHECK(r.stats.node_visits <= 2 * 26 * compiled.states());  // bounded by nodes x states
  CHECK_FALSE(pp::bit_equal(r.hidden, pp::forward(m, a).hidden));
  CHECK_FALSE(pp::bit_equal(r.hidden, pp::forward(m, b).hidden));
  // The same experiment as lambdas hits the path budget instead of hanging.
  pp::RunOptions opt;
  opt.path_budget = 100000;
  CHECK_THROWS_AS(pp::run(m, {a, b}, compiled.which(), compiled.branch(), opt), pp::BudgetError);
}
