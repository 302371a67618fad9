// Paths restricted to positions: one head's input (aL.headH.q|k|v.posP) and the final norm's input
// (ln_final.posP), in rules and in lambdas; path-patching receivers and senders at positions (IOI's
// "queries of the name movers at END").
#include <catch2/catch.hpp>

#include <algorithm>

#include "helpers.hpp"
#include "pathpatch/rules.hpp"

namespace pp = pathpatch;

namespace {

pp::Batch clean() { return pp::Batch::from_rows({{3, 14, 15, 92, 65, 35, 89}, {7, 7, 1, 2, 9, 4, 5}}); }
pp::Batch corrupt() { return pp::Batch::from_rows({{3, 14, 15, 92, 11, 35, 89}, {8, 6, 1, 2, 3, 4, 5}}); }

pp::Result patched(const pp::Model& m, std::vector<pp::Intervention> interventions) {
  pp::RunOptions o;
  o.interventions = std::move(interventions);
  return pp::run(m, {clean(), corrupt()}, [](const pp::Path&) { return 0; }, pptest::no_split, o);
}

// Rows [0, T) of hidden states [B, T, D] where `a` and `b` differ by more than `tolerance`.
std::vector<int64_t> rows_that_differ(const pp::Tensor& a, const pp::Tensor& b, float tolerance) {
  std::vector<int64_t> rows;
  const int64_t B = a.size(0), T = a.size(1), D = a.size(2);
  for (int64_t t = 0; t < T; ++t) {
    bool differ = false;
    for (int64_t i = 0; i < B; ++i)
      for (int64_t d = 0; d < D; ++d) differ |= std::abs(a.at({i, t, d}) - b.at({i, t, d})) > tolerance;
    if (differ) rows.push_back(t);
  }
  return rows;
}

}  // namespace

TEST_CASE("a head's input at one position reads the other input: that head's activation patched at that row",
          "[positions][rules]") {
  struct Case {
    const char* model;
    const char* rule;
    pp::Intervention same;  // the same experiment as an intervention on the forward
  };
  // llama-gqa: 4 query heads, 2 key/value heads (heads 2 and 3 share kv head 1).
  const Case cases[] = {
      {"gpt2", "a1.head2.q.pos5", pp::replace("q1", 1, {{2}, {5}})},
      {"gpt2", "a1.head0.k.pos3", pp::replace("k1", 1, {{0}, {3}})},
      {"gpt2", "a1.head3.v.pos0", pp::replace("v1", 1, {{3}, {0}})},
      {"llama-gqa", "a1.head2.q.pos6", pp::replace("q1", 1, {{2}, {6}})},
      {"llama-gqa", "(a1.head2.k | a1.head3.k) a1.head*.k.pos4", pp::replace("k1", 1, {{1}, {4}})},
      {"pythia", "a1.head1.q.pos2", pp::replace("q1", 1, {{1}, {2}})},
  };
  for (const Case& c : cases) {
    const pp::Model& m = pptest::model(c.model);
    INFO(c.model << ": " << c.rule);
    auto cache = std::make_shared<pp::Cache>();
    pp::RunOptions opt;
    opt.cache = cache;
    pp::PathRules rules = pp::PathRules().add(c.rule, 1);
    pp::Result by_rules = pp::run(m, {clean(), corrupt()}, rules, opt);
    pp::Result by_hook = patched(m, {c.same});
    CHECK(pp::max_abs_diff(by_rules.hidden, by_hook.hidden) < 1e-5f);
    CHECK(pp::max_abs_diff(by_rules.hidden, pp::forward(m, clean()).hidden) > 1e-4f);  // it did something
    // The lambda form of the same rules walks the same paths to the same provenance.
    pp::CompiledRules compiled(m, clean().seq, rules);
    pp::Result by_lambdas = pp::run(m, {clean(), corrupt()}, compiled.which(), compiled.branch(), opt);
    CHECK(by_lambdas.root == by_rules.root);
  }
}

TEST_CASE("lambdas split a head's input by position", "[positions][engine]") {
  const pp::Model& m = pptest::model("gpt2");
  std::vector<std::string> asked;
  auto branch = [&](const pp::Path& p) {
    asked.emplace_back(p.back());
    const std::string_view b = p.back();
    if (b == "a1" || b == "a1.head" || b == "a1.head2") return pp::Split::Edges;
    return b == "a1.head2.q" ? pp::Split::Positions : pp::Split::None;
  };
  auto which = [](const pp::Path& p) { return p.contains("a1.head2.q.pos5") ? 1 : 0; };
  pp::Result r = pp::run(m, {clean(), corrupt()}, which, branch);
  CHECK(pp::max_abs_diff(r.hidden, patched(m, {pp::replace("q1", 1, {{2}, {5}})}).hidden) < 1e-5f);
  // Asked at each input of the split head, not at the inputs of heads that did not split.
  CHECK(std::count(asked.begin(), asked.end(), "a1.head2.k") == 1);
  CHECK(std::count(asked.begin(), asked.end(), "a1.head1.k") == 0);
  // A head's input has one edge; and positions split at its inputs, not at the head.
  auto edges_at_input = [](const pp::Path& p) {
    const std::string_view b = p.back();
    return b == "a1" || b == "a1.head" || b == "a1.head2" || b == "a1.head2.v" ? pp::Split::Edges : pp::Split::None;
  };
  CHECK_THROWS_WITH(pp::run(m, {clean(), corrupt()}, which, edges_at_input),
                    Catch::Contains("Split::Edges at a1.head2.v") && Catch::Contains("single input edge"));
  auto positions_at_head = [](const pp::Path& p) {
    const std::string_view b = p.back();
    return b == "a1" || b == "a1.head" ? pp::Split::Edges : b == "a1.head2" ? pp::Split::Positions : pp::Split::None;
  };
  CHECK_THROWS_WITH(pp::run(m, {clean(), corrupt()}, which, positions_at_head),
                    Catch::Contains("Positions at a1.head2 ") && Catch::Contains("aL.headH.q|k|v"));
}

TEST_CASE("rules over a head's input positions: refusals", "[positions][rules][refuse]") {
  const pp::Model& m = pptest::model("gpt2");
  auto error_of = [&](pp::PathRules rules) {
    try {
      pp::run(m, {clean(), corrupt()}, rules);
    } catch (const pp::RuleError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  CHECK_THAT(error_of(pp::PathRules().add("a1.head2.q.pos7", 1)), Catch::Contains("matches no path name"));
  CHECK_THAT(error_of(pp::PathRules().add("a1.head9.q.pos1", 1)), Catch::Contains("matches no path name"));
  CHECK_THAT(error_of(pp::PathRules().add("a1.head2.q.pos6", 1)), Catch::Contains("(no error)"));
  CHECK_THAT(error_of(pp::PathRules().add("a1.head.pos3", 1).add("a1.head2.q.pos4", 1)),
             Catch::Contains("both the heads and the positions of a1.head"));
  // Every input position of every head at 50 000 positions: 1.2 million names, refused before the
  // automaton is built.
  CHECK_THROWS_WITH(pp::CompiledRules(m, 50000, pp::PathRules().add("a*.head*.*.pos*", 1)),
                    Catch::Contains("more than 1000000 positions of heads' inputs"));
  CHECK(pp::CompiledRules(m, 50000, pp::PathRules().add("a1.head*.q.pos49999", 1)).states() > 1);
  // Typed names print as the text they stand for.
  pp::NameSet every_row{pp::PathName::head_input_position(2, 0, pp::Role::Q, 0), false, false, true};
  CHECK(every_row.str() == "a2.head0.q.pos*");
  CHECK(pp::NameSet{pp::PathName::head_input_position(2, 1, pp::Role::K, 11), true, true}.str() == "a*.head*.k.pos11");
}

TEST_CASE("path patching to a receiver's positions", "[positions][patching]") {
  const pp::Model& m = pptest::model("gpt2");  // two layers: layer 1's heads write to the logits only
  const pp::Tensor plain = pp::forward(m, clean()).hidden;
  auto q12 = [](std::vector<int> positions) { return pp::Receiver{pp::Receiver::Q, 1, 2, std::move(positions)}; };
  pp::PathPatchingOptions opt;
  opt.cache = std::make_shared<pp::Cache>();
  const pp::Result all = pp::path_patch(m, clean(), corrupt(), {{0, 1}}, {q12({})}, opt);
  // Every position named is no position named: the same provenance.
  CHECK(pp::path_patch(m, clean(), corrupt(), {{0, 1}}, {q12({0, 1, 2, 3, 4, 5, 6})}, opt).root == all.root);
  CHECK(pp::path_patch(m, clean(), corrupt(), {{0, 1}}, {q12({-2})}, opt).root ==
        pp::path_patch(m, clean(), corrupt(), {{0, 1}}, {q12({5})}, opt).root);
  // A query at row P changes the head's output at row P alone; in the last layer that is the
  // final residual's row P, which is the row of the receiver at every position.
  // (At row 0 a query has one key to attend to: it changes nothing there.)
  for (int P : {1, 3, 6}) {
    INFO("q1.2 at " << P);
    const pp::Result one = pp::path_patch(m, clean(), corrupt(), {{0, 1}}, {q12({P})}, opt);
    CHECK(rows_that_differ(one.hidden, plain, 1e-5f) == std::vector<int64_t>{P});
    std::vector<int64_t> elsewhere = rows_that_differ(all.hidden, plain, 1e-5f);
    elsewhere.erase(std::remove(elsewhere.begin(), elsewhere.end(), int64_t{P}), elsewhere.end());
    CHECK(rows_that_differ(one.hidden, all.hidden, 1e-5f) == elsewhere);
    float worst = 0;
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t d = 0; d < all.hidden.size(2); ++d)
        worst = std::max(worst, std::abs(one.hidden.at({b, P, d}) - all.hidden.at({b, P, d})));
    CHECK(worst < 1e-5f);
  }
  // A key at row P reaches the outputs of rows P and after, and no row before.
  const pp::Model& gqa = pptest::model("llama-gqa");
  const pp::Tensor gqa_plain = pp::forward(gqa, clean()).hidden;
  const pp::Result keys = pp::path_patch(gqa, clean(), corrupt(), {{0, 3}}, {{pp::Receiver::K, 1, 2, {4}}});
  const std::vector<int64_t> changed = rows_that_differ(keys.hidden, gqa_plain, 1e-6f);
  REQUIRE_FALSE(changed.empty());
  CHECK(changed.front() >= 4);
}

TEST_CASE("a receivers sweep at one position equals its experiments one by one", "[positions][patching]") {
  const pp::Model& m = pptest::model("llama-gqa");
  const pp::Metric metric = pp::Metric::logit_diff({40, 41}, {50, 51});
  const pp::SweepResult s =
      pp::sweep_receivers(m, clean(), corrupt(), {{0, 1}}, pp::Receiver::Q, metric, {}, std::vector<int>{-1});
  const pp::SweepResult every = pp::sweep_receivers(m, clean(), corrupt(), {{0, 1}}, pp::Receiver::Q, metric);
  for (int h = 0; h < m.config().n_heads; ++h) {
    INFO("receiver a1.head" << h << ".q at the last position");
    const pp::Result one = pp::path_patch(m, clean(), corrupt(), {{0, 1}}, {{pp::Receiver::Q, 1, h, {6}}});
    const pp::Tensor logits = pp::logits_at(m, one.hidden, {6});  // [B, 1, V]
    const float expect = ((logits.at({0, 0, 40}) - logits.at({0, 0, 50})) + (logits.at({1, 0, 41}) - logits.at({1, 0, 51}))) / 2;
    CHECK(s.values.at({1, h}) == Approx(expect).margin(1e-4));
    // The metric reads the last row only, where a query elsewhere has no effect in the last layer.
    CHECK(s.values.at({1, h}) == Approx(every.values.at({1, h})).margin(1e-4));
  }
}

TEST_CASE("receiver positions are refused outside the input, on padding and for the logits",
          "[positions][patching][refuse]") {
  const pp::Model& m = pptest::model("gpt2");
  auto q = [](std::vector<int> positions) { return pp::Receiver{pp::Receiver::Q, 1, 2, std::move(positions)}; };
  CHECK_THROWS_WITH(pp::path_patch(m, clean(), corrupt(), {{0, 1}}, {q({7})}),
                    Catch::Contains("receiver a1.head2.q position 7 is outside the input's 7 positions"));
  CHECK_THROWS_WITH(pp::path_patch(m, clean(), corrupt(), {{0, 1}}, {q({-8})}), Catch::Contains("position -8"));
  pp::Receiver logits = pp::Receiver::logits();
  logits.positions = {-1};
  CHECK_THROWS_WITH(pp::path_patch(m, clean(), corrupt(), {{0, 1}}, {logits}),
                    Catch::Contains("the metric chooses the positions"));
  const pp::Batch short_row = pp::Batch::from_rows({{3, 14, 15, 92, 65, 35, 89}, {4, 5, 9}});
  const pp::Batch short_other = pp::Batch::from_rows({{3, 14, 15, 92, 11, 35, 89}, {4, 6, 9}});
  CHECK_THROWS_WITH(pp::path_patch(m, short_row, short_other, {{0, 1}}, {q({2})}),
                    Catch::Contains("position 2 is padding in row 1 of the clean prompts (3 tokens of 7)"));
  CHECK_NOTHROW(pp::path_patch(m, short_row, short_other, {{0, 1}}, {q({-1})}));
  CHECK_THROWS_WITH(pp::sweep_receivers(m, clean(), corrupt(), {{0, 1}}, pp::Receiver::K,
                                        pp::Metric::logit_diff({40, 41}, {50, 51}), {}, std::vector<int>{9}),
                    Catch::Contains("position 9 is outside"));
  CHECK_THROWS_WITH(pp::path_patching_rules(m, {{0, 1}}, {q({3})}, false),
                    Catch::Contains("names positions: pass the inputs' length"));
}

TEST_CASE("the heads' input positions are symbols made on demand", "[positions][path]") {
  const pp::Model& m = pptest::model("gpt2");  // 2 layers, 4 heads
  const pp::PathAlphabet names(m.graph(), 512);
  const int interned = static_cast<int>(names.entries().size());
  CHECK(names.size() == interned + 2 * 4 * 3 * 512);
  CHECK(interned < (2 * 2 + 1) * 512 + 100);  // nodes, sub-layer and final positions, heads and their inputs
  for (int sym : {interned, interned + 1, names.size() / 2 + 7, names.size() - 1}) {
    const pp::PathName n = names.name(sym);
    INFO(n.str());
    CHECK(n.kind == pp::PathName::HeadInputPosition);
    CHECK(names.find(n) == sym);
    CHECK(pp::PathName::parse(n.str()) == n);
  }
  CHECK(names.name(names.size() - 1).str() == "a1.head3.v.pos511");
  CHECK(names.find(pp::PathName::head_input_position(1, 3, pp::Role::V, 512)) == -1);
  CHECK(names.find(pp::PathName::head_input_position(2, 0, pp::Role::Q, 0)) == -1);
  for (const char* bad : {"a1.head2.q.pos", "a1.head2.q.pos01", "a1.head2.qpos1", "a1.head2.q.pos1.x", "a1.head.q.pos1"})
    CHECK_FALSE(pp::PathName::parse(bad).has_value());
}

TEST_CASE("the final norm's input at one position: the residual stream's row there", "[positions][rules]") {
  for (const char* name : {"gpt2", "gemma2"}) {
    const pp::Model& m = pptest::model(name);
    INFO(name);
    const pp::Tensor plain = pp::forward(m, clean()).hidden;
    auto cache = std::make_shared<pp::Cache>();
    pp::RunOptions opt;
    opt.cache = cache;
    // Every path through head 0.1 reads the corrupted prompt, at row 5 of the final residual only.
    pp::PathRules at5 = pp::PathRules().add("ln_final ln_final.pos5 ... a0.head1", 1);
    const pp::Result one = pp::run(m, {clean(), corrupt()}, at5, opt);
    const pp::Result all = pp::run(m, {clean(), corrupt()}, pp::PathRules().add("ln_final ... a0.head1", 1), opt);
    REQUIRE(rows_that_differ(all.hidden, plain, 1e-5f).size() > 1);
    CHECK(rows_that_differ(one.hidden, plain, 1e-5f) == std::vector<int64_t>{5});
    float worst = 0;
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t d = 0; d < all.hidden.size(2); ++d)
        worst = std::max(worst, std::abs(one.hidden.at({b, 5, d}) - all.hidden.at({b, 5, d})));
    CHECK(worst < 1e-5f);
    pp::CompiledRules compiled(m, clean().seq, at5);
    CHECK(pp::run(m, {clean(), corrupt()}, compiled.which(), compiled.branch(), opt).root == one.root);
  }
  // Lambdas: ln_final is asked too; it has one edge.
  const pp::Model& m = pptest::model("gpt2");
  auto which = [](const pp::Path& p) { return p.contains("ln_final.pos5") && p.contains("a0.head1") ? 1 : 0; };
  auto branch = [](const pp::Path& p) {
    const std::string_view b = p.back();
    return b == "ln_final" ? pp::Split::Positions : b == "a0" || b == "a0.head" ? pp::Split::Edges : pp::Split::None;
  };
  CHECK(pp::max_abs_diff(pp::run(m, {clean(), corrupt()}, which, branch).hidden,
                         pp::run(m, {clean(), corrupt()}, pp::PathRules().add("ln_final ln_final.pos5 ... a0.head1", 1))
                             .hidden) == 0.0f);
  auto edges_at_final = [](const pp::Path& p) { return p.back() == "ln_final" ? pp::Split::Edges : pp::Split::None; };
  CHECK_THROWS_WITH(pp::run(m, {clean(), corrupt()}, which, edges_at_final),
                    Catch::Contains("Split::Edges at ln_final") && Catch::Contains("single input edge"));
}

TEST_CASE("path patching from a sender's positions", "[positions][patching]") {
  const pp::Model& m = pptest::model("llama-gqa");
  const pp::Tensor plain = pp::forward(m, clean()).hidden;
  pp::PathPatchingOptions opt;
  opt.cache = std::make_shared<pp::Cache>();
  auto patch = [&](pp::Sender s, pp::Receiver r) { return pp::path_patch(m, clean(), corrupt(), {s}, {r}, opt); };
  const pp::Receiver logits = pp::Receiver::logits(), q12{pp::Receiver::Q, 1, 2};
  // To the logits: the sender's row P reaches the final residual's row P alone.
  const pp::Result all = patch({0, 1}, logits);
  for (int P : {2, 6}) {
    INFO("sender a0.head1 at " << P);
    const pp::Result one = patch({0, 1, {P}}, logits);
    CHECK(rows_that_differ(one.hidden, plain, 1e-5f) == std::vector<int64_t>{P});
    std::vector<int64_t> elsewhere = rows_that_differ(all.hidden, plain, 1e-5f);
    elsewhere.erase(std::remove(elsewhere.begin(), elsewhere.end(), int64_t{P}), elsewhere.end());
    CHECK(rows_that_differ(one.hidden, all.hidden, 1e-5f) == elsewhere);
  }
  // To a head's input: the sender's positions are the receiver's; both given, they meet.
  CHECK(patch({0, 1, {3}}, q12).root == patch({0, 1}, {pp::Receiver::Q, 1, 2, {3}}).root);
  CHECK(patch({0, 1, {3, 4, -1}}, {pp::Receiver::Q, 1, 2, {4, 5, 6}}).root ==
        patch({0, 1}, {pp::Receiver::Q, 1, 2, {4, 6}}).root);
  CHECK(patch({0, 1, {0, 1, 2, 3, 4, 5, 6}}, logits).root == all.root);
  CHECK_THROWS_WITH(patch({0, 1, {3}}, {pp::Receiver::Q, 1, 2, {4}}),
                    Catch::Contains("sender a0.head1 at positions 3 sends nothing to receiver a1.head2.q at positions 4"));
  CHECK_THROWS_WITH(patch({0, 1, {9}}, logits), Catch::Contains("sender a0.head1 position 9 is outside"));
  // MLP senders too.
  CHECK(rows_that_differ(patch({0, -1, {-1}}, logits).hidden, plain, 1e-5f) == std::vector<int64_t>{6});
}

TEST_CASE("a senders sweep at the scored position equals the whole senders' sweep there", "[positions][patching]") {
  const pp::Model& m = pptest::model("gpt2");
  const pp::Metric metric = pp::Metric::logit_diff({40, 41}, {50, 51});  // read at the last position
  const pp::SweepResult all = pp::sweep_senders(m, clean(), corrupt(), {pp::Receiver::logits()}, metric, {}, true);
  const pp::SweepResult end =
      pp::sweep_senders(m, clean(), corrupt(), {pp::Receiver::logits()}, metric, {}, true, std::vector<int>{-1});
  const pp::SweepResult before =
      pp::sweep_senders(m, clean(), corrupt(), {pp::Receiver::logits()}, metric, {}, true, std::vector<int>{0, 1, 2});
  for (int64_t i = 0; i < all.values.numel(); ++i) {
    CHECK(end.values.data()[i] == Approx(all.values.data()[i]).margin(1e-4));
    CHECK(before.values.data()[i] == Approx(all.clean).margin(1e-4));  // nothing reaches the scored row
  }
  CHECK_THROWS_WITH(pp::sweep_senders(m, clean(), corrupt(), {pp::Receiver::logits()}, metric, {}, false,
                                      std::vector<int>{7}),
                    Catch::Contains("sender position 7 is outside the input's 7 positions"));
}
