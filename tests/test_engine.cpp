// The path-patching engine: nano-path-patching's semantics (its test/test_gpt2.py cases, ported to
// the tiny 2-layer checkpoints), the memo cache, and grouped-query head paths.
#include <catch2/catch.hpp>

#include "helpers.hpp"

namespace pp = pathpatch;

namespace {

// Inputs differ at position 4 only.
pp::Batch clean() { return pp::Batch::from_rows({{3, 14, 15, 92, 65, 35, 89}, {7, 7, 1, 2, 3, 4, 5}}); }
pp::Batch corrupt() { return pp::Batch::from_rows({{3, 14, 15, 92, 11, 35, 89}, {7, 7, 1, 2, 9, 4, 5}}); }

pp::RunOptions uncached() {
  pp::RunOptions o;
  o.cache = std::make_shared<pp::Cache>(0);  // a zero budget keeps nothing: every value recomputed
  return o;
}

// Runs an experiment with and without the memo cache; both must agree bit for bit.
pp::Tensor run_both(const pp::Model& m, const pp::WhichFn& which, const pp::BranchFn& branch) {
  pp::Result cached = pp::run(m, {clean(), corrupt()}, which, branch);
  pp::Result plain = pp::run(m, {clean(), corrupt()}, which, branch, uncached());
  REQUIRE(pp::bit_equal(cached.hidden, plain.hidden));
  return cached.hidden;
}

// Positions [0, p) of `a` and `b` are bit-equal; some position in [p, T) differs.
void check_unchanged_before(const pp::Tensor& a, const pp::Tensor& b, int64_t p) {
  const int64_t B = a.size(0), T = a.size(1), D = a.size(2);
  bool before_equal = true, after_differs = false;
  for (int64_t i = 0; i < B; ++i)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t d = 0; d < D; ++d) {
        bool eq = a.at({i, t, d}) == b.at({i, t, d});
        if (t < p) before_equal = before_equal && eq;
        else after_differs = after_differs || !eq;
      }
  CHECK(before_equal);
  CHECK(after_differs);
}

const char* const kModels[] = {"gpt2", "llama-gqa"};

}  // namespace

TEST_CASE("constant which with no split equals the plain forward bit for bit", "[engine]") {
  for (const char* name : kModels) {
    const pp::Model& m = pptest::model(name);
    pp::Tensor truth = pp::forward(m, corrupt()).hidden;
    CHECK(pp::bit_equal(run_both(m, [](const pp::Path&) { return 1; }, pptest::no_split), truth));
  }
}

TEST_CASE("splitting while every path reads the same input changes nothing", "[engine]") {
  for (const char* name : kModels) {
    const pp::Model& m = pptest::model(name);
    pp::Tensor truth = pp::forward(m, corrupt()).hidden;
    auto always1 = [](const pp::Path&) { return 1; };
    // nano's test_branch, test_branch2, test_attn_heads, and a q/k/v split of every head, each
    // input's positions apart.
    auto attn_positions = [](const pp::Path& p) {
      return p.back() == "a1" ? pp::Split::Edges : p.back() == "a1.head" ? pp::Split::Positions : pp::Split::None;
    };
    auto mlp_positions = [](const pp::Path& p) {
      return p.back() == "f1" ? pp::Split::Edges : p.back() == "f1.head" ? pp::Split::Positions : pp::Split::None;
    };
    auto everything = [](const pp::Path& p) {
      std::string_view b = p.back();
      if (p.last().kind == pp::PathName::HeadInput) return pp::Split::Positions;
      return b.substr(0, 2) == "a1" || b == "f0" ? pp::Split::Edges : pp::Split::None;
    };
    INFO(name);
    CHECK(pp::bit_equal(run_both(m, always1, attn_positions), truth));
    CHECK(pp::bit_equal(run_both(m, always1, mlp_positions), truth));
    CHECK(pp::bit_equal(run_both(m, always1, everything), truth));
  }
}

TEST_CASE("patching a position leaves every position before it unchanged", "[engine]") {
  for (const char* name : kModels) {
    const pp::Model& m = pptest::model(name);
    pp::Tensor truth = pp::forward(m, corrupt()).hidden;
    auto split_attn = [](const pp::Path& p) {
      return p.back() == "a1" ? pp::Split::Edges : p.back() == "a1.head" ? pp::Split::Positions : pp::Split::None;
    };
    auto split_mlp = [](const pp::Path& p) {
      return p.back() == "f1" ? pp::Split::Edges : p.back() == "f1.head" ? pp::Split::Positions : pp::Split::None;
    };
    INFO(name << ": test_attn_lastpos");
    check_unchanged_before(
        run_both(m, [](const pp::Path& p) { return p.contains("a1.head.pos6") ? 0 : 1; }, split_attn), truth, 6);
    INFO(name << ": test_attn_last2pos");
    check_unchanged_before(run_both(
                               m,
                               [](const pp::Path& p) {
                                 return p.contains("a1.head.pos6") || p.contains("a1.head.pos5") ? 0 : 1;
                               },
                               split_attn),
                           truth, 5);
    INFO(name << ": test_ffn_lastpos");
    check_unchanged_before(
        run_both(m, [](const pp::Path& p) { return p.contains("f1.head.pos6") ? 0 : 1; }, split_mlp), truth, 6);
    INFO(name << ": test_ffn2_lastpos");
    auto two_mlps = [](const pp::Path& p) {
      if (p.back() == "f1") return pp::Split::Edges;
      if (p.back() == "f1.head") return pp::Split::Positions;
      if (!p.contains("f1") && p.back() == "f0") return pp::Split::Edges;
      if (!p.contains("f1") && p.back() == "f0.head") return pp::Split::Positions;
      return pp::Split::None;
    };
    check_unchanged_before(
        run_both(m, [](const pp::Path& p) { return p.contains("f1.head.pos6") || p.contains("f0.head.pos6") ? 0 : 1; },
                 two_mlps),
        truth, 6);
    INFO(name << ": test_ffn_attn_lastpos");
    auto mlp_and_attn = [](const pp::Path& p) {
      if (p.back() == "f1") return pp::Split::Edges;
      if (p.back() == "f1.head") return pp::Split::Positions;
      if (!p.contains("f1") && p.back() == "a1") return pp::Split::Edges;
      if (!p.contains("f1") && p.back() == "a1.head") return pp::Split::Positions;
      return pp::Split::None;
    };
    check_unchanged_before(
        run_both(m, [](const pp::Path& p) { return p.contains("f1.head.pos6") || p.contains("a1.head.pos6") ? 0 : 1; },
                 mlp_and_attn),
        truth, 6);
  }
}

TEST_CASE("the predicates see nano-path-patching's paths", "[engine]") {
  const pp::Model& m = pptest::model("gpt2");
  std::vector<std::string> asked_which, asked_branch;
  auto which = [&](const pp::Path& p) {
    asked_which.push_back(p.str());
    return 0;
  };
  auto branch = [&](const pp::Path& p) {
    asked_branch.push_back(p.str());
    return p.back() == "f1" ? pp::Split::Edges : pp::Split::None;
  };
  pp::run(m, {clean()}, which, branch);
  // ln_final is asked first (its rows may split). Split f1: its residual edge does not name f1;
  // its sub-layer edge goes through f1.head.
  CHECK(asked_branch == std::vector<std::string>{
                            "ln_final",
                            "ln_final > f1",
                            "ln_final > a1",
                            "ln_final > a1 > f0",
                            "ln_final > a1 > f0 > a0",
                            "ln_final > f1 > f1.head",
                            "ln_final > f1 > f1.head > a1",
                            "ln_final > f1 > f1.head > a1 > f0",
                            "ln_final > f1 > f1.head > a1 > f0 > a0",
                        });
  CHECK(asked_which == std::vector<std::string>{"ln_final > a1 > f0 > a0 > emb",
                                                "ln_final > f1 > f1.head > a1 > f0 > a0 > emb"});
}

TEST_CASE("the memo cache computes each distinct step once", "[engine][cache]") {
  const pp::Model& m = pptest::model("gpt2");
  auto cache = std::make_shared<pp::Cache>();
  pp::RunOptions opt;
  opt.cache = cache;
  auto none = pptest::no_split;
  // A plain forward: emb, then per layer AttnZ, AttnOut, Add, Mlp, Add; then ln_final. A step read
  // twice (a residual feeds its skip edge and its sub-layer) is computed once: no hit within a run.
  pp::Result r0 = pp::run(m, {clean(), corrupt()}, [](const pp::Path&) { return 0; }, none, opt);
  CHECK(r0.stats.computed == 1 + 2 * 5 + 1);
  CHECK(r0.stats.cache_hits == 0);
  // Everything reads the corrupted input, which agrees with the clean one on positions 0-3: every
  // step computes positions 4-6 only (attentions reuse the clean keys and values before 4), and the
  // root takes positions 0-3 from the clean run (1 hit).
  pp::Result r1 = pp::run(m, {clean(), corrupt()}, [](const pp::Path&) { return 1; }, none, opt);
  CHECK(r1.stats.computed == 12);
  CHECK(r1.stats.cache_hits == 1);
  CHECK(r1.stats.flops < 0.6 * r0.stats.flops);
  pp::Tensor corrupted = pp::forward(m, corrupt()).hidden;
  CHECK(pp::max_abs_diff(r1.hidden, corrupted) < 1e-5f);
  // Attention 1 reads the corrupted input: only the steps after it are new, on positions 4-6.
  // Hits: corrupted attn_out1 and clean resid_pre1 (positions 4-6), and the clean root (0-3).
  auto branch = [](const pp::Path& p) { return p.back() == "a1" ? pp::Split::Edges : pp::Split::None; };
  auto which = [](const pp::Path& p) { return p.contains("a1") ? 1 : 0; };
  pp::Result r2 = pp::run(m, {clean(), corrupt()}, which, branch, opt);
  CHECK(r2.stats.computed == 4);  // Add a1, Mlp f1.head, Add f1, ln_final
  CHECK(r2.stats.cache_hits == 3);
  // The same experiment again is one hit at the root.
  pp::Result r3 = pp::run(m, {clean(), corrupt()}, which, branch, opt);
  CHECK(r3.stats.computed == 0);
  CHECK(r3.stats.cache_hits == 1);
  CHECK(pp::bit_equal(r3.hidden, r2.hidden));
  CHECK(r3.stats.flops_saved > 0);
  // Without the cache, the same experiment from scratch agrees to float rounding.
  pp::Result fresh = pp::run(m, {clean(), corrupt()}, which, branch);
  CHECK(pp::max_abs_diff(fresh.hidden, r2.hidden) < 1e-5f);
}

TEST_CASE("grouped-query attention: head paths are per query head, keys per kv group", "[engine][gqa]") {
  const pp::Model& m = pptest::model("llama-gqa");  // 4 query heads, 2 kv heads: group 0 = heads 0, 1
  auto branch = [](const pp::Path& p) {
    std::string_view b = p.back();
    return b == "a1" || b == "a1.head" || b == "a1.head0" || b == "a1.head1" ? pp::Split::Edges : pp::Split::None;
  };
  // The keys of both query heads of group 0 read the corrupted input ...
  pp::Result paths = pp::run(m, {clean(), corrupt()},
                             [](const pp::Path& p) { return p.contains("a1.head0.k") || p.contains("a1.head1.k") ? 1 : 0; },
                             branch);
  // ... which is patching kv head 0 of hook_k with its corrupted value.
  pp::RunOptions opt;
  opt.interventions.push_back(pp::replace("blocks.1.attn.hook_k", 1, {{0}, {}}));
  pp::Result patched = pp::run(m, {clean(), corrupt()}, [](const pp::Path&) { return 0; }, pptest::no_split, opt);
  CHECK(pp::max_abs_diff(paths.hidden, patched.hidden) < 1e-5f);
  CHECK_FALSE(pp::bit_equal(patched.hidden, pp::forward(m, clean()).hidden));
  // Only query head 0's key reading it is a different experiment: head 1 keeps the clean key.
  pp::Result one = pp::run(m, {clean(), corrupt()}, [](const pp::Path& p) { return p.contains("a1.head0.k") ? 1 : 0; },
                           branch);
  CHECK(pp::max_abs_diff(one.hidden, patched.hidden) > 1e-4f);
  // Reading hook_k is refused when one group's heads read different inputs.
  pp::RunOptions probe_k;
  probe_k.interventions.push_back(pp::probe("k1"));
  CHECK_THROWS_AS(pp::run(m, {clean(), corrupt()}, [](const pp::Path& p) { return p.contains("a1.head0.k") ? 1 : 0; },
                          branch, probe_k),
                  pp::PredicateError);
}

TEST_CASE("bad predicates and inputs give typed errors", "[engine][refuse]") {
  const pp::Model& m = pptest::model("gpt2");
  auto none = pptest::no_split;
  CHECK_THROWS_WITH(pp::run(m, {clean(), corrupt()}, [](const pp::Path&) { return 2; }, none),
                    Catch::Contains("which() returned 2") && Catch::Contains("2 inputs"));
  CHECK_THROWS_AS(pp::run(m, {clean()}, [](const pp::Path&) { return -1; }, none), pp::PredicateError);
  CHECK_THROWS_WITH(pp::run(m, {clean()}, [](const pp::Path&) { return 0; },
                            [](const pp::Path& p) { return p.back() == "a1" ? pp::Split::Positions : pp::Split::None; }),
                    Catch::Contains("Positions at a1"));
  CHECK_THROWS_WITH(pp::run(m, {clean()}, [](const pp::Path&) { return 0; },
                            [](const pp::Path& p) {
                              return p.back() == "f1" || p.back() == "f1.head" ? pp::Split::Edges : pp::Split::None;
                            }),
                    Catch::Contains("single input edge"));
  pp::Batch shorter = pp::Batch::from_rows({{1, 2, 3}, {4, 5, 6}});
  CHECK_THROWS_WITH(pp::run(m, {clean(), shorter}, [](const pp::Path&) { return 0; }, none),
                    Catch::Contains("same batch size, length and padding"));
  CHECK_THROWS_WITH(pp::forward(m, pp::Batch::from_rows({{1, 2, 101}})), Catch::Contains("outside the vocabulary"));
  CHECK_THROWS_WITH(pp::forward(m, pp::Batch::from_rows({std::vector<int32_t>(33, 1)})),
                    Catch::Contains("longer than the model's context"));
  CHECK_THROWS_AS(pp::Batch::from_rows({}), pp::InputError);
  CHECK_THROWS_AS(pp::Batch::from_rows({{}}), pp::InputError);
  CHECK_THROWS_WITH(pp::run(m, {}, [](const pp::Path&) { return 0; }, none), Catch::Contains("no inputs"));
}

TEST_CASE("a predicate that throws reaches the caller and leaves the cache usable", "[engine][refuse]") {
  const pp::Model& m = pptest::model("gpt2");
  auto cache = std::make_shared<pp::Cache>();
  pp::RunOptions opt;
  opt.cache = cache;
  struct Boom {};
  auto which = [](const pp::Path& p) -> int {
    if (p.contains("a0")) throw Boom{};
    return 0;
  };
  auto branch = [](const pp::Path& p) { return p.back() == "a1" ? pp::Split::Edges : pp::Split::None; };
  CHECK_THROWS_AS(pp::run(m, {clean()}, which, branch, opt), Boom);
  pp::Result after = pp::run(m, {clean()}, [](const pp::Path&) { return 0; }, branch, opt);
  CHECK(pp::bit_equal(after.hidden, pp::forward(m, clean()).hidden));
}

TEST_CASE("the path budget stops an exponential lambda experiment", "[engine][refuse]") {
  const pp::Model& m = pptest::model("gpt2");
  pp::RunOptions opt;
  opt.path_budget = 1000;
  auto split_all = [](const pp::Path& p) {
    std::string_view b = p.back();
    bool head = b.find(".head") != std::string_view::npos && b.find(".pos") == std::string_view::npos &&
                b.find('.', b.find(".head") + 1) == std::string_view::npos;
    if (b == "ln_final" || (b[0] == 'f' && b.find(".head") != std::string_view::npos)) return pp::Split::Positions;
    return head || b.find('.') == std::string_view::npos ? pp::Split::Edges : pp::Split::None;
  };
  CHECK_THROWS_WITH(pp::run(m, {clean()}, [](const pp::Path&) { return 0; }, split_all, opt),
                    Catch::Contains("path budget"));
}

TEST_CASE("replace sources are planned steps: cached values without their captures are recomputed", "[engine]") {
  // Replacing an activation computed inside a step (q, pattern) needs that step of the source
  // input run again when the cache holds only its output; the plan then computes it before its
  // readers, and a later run finds the captured value in the cache.
  for (const char* name : {"gpt2", "llama-gqa"}) {
    const pp::Model& m = pptest::model(name);
    const std::vector<pp::Intervention> patches[] = {{pp::replace("pattern1", 0)},
                                                     {pp::replace("q1", 0, {{1}, {5}})},
                                                     {pp::replace("q0", 0), pp::replace("attn_out1", 0)}};
    for (const auto& ivs : patches) {
      INFO(name << " " << ivs[0].activation);
      auto always1 = [](const pp::Path&) { return 1; };  // input 0 is only a source
      pp::RunOptions fresh = uncached();
      fresh.interventions = ivs;
      pp::Tensor truth = pp::run(m, {clean(), corrupt()}, always1, pptest::no_split, fresh).hidden;
      CHECK(pp::max_abs_diff(truth, pp::forward(m, corrupt()).hidden) > 1e-3f);

      pp::RunOptions shared;
      shared.cache = std::make_shared<pp::Cache>();
      pp::forward(m, clean(), shared);  // the cache holds input 0's steps, not what they compute inside
      shared.interventions = ivs;
      pp::Result first = pp::run(m, {clean(), corrupt()}, always1, pptest::no_split, shared);
      pp::Result again = pp::run(m, {clean(), corrupt()}, always1, pptest::no_split, shared);
      // Equal up to rounding: with input 0's steps cached, rows before the inputs differ are taken
      // from them instead of recomputed.
      CHECK(pp::max_abs_diff(first.hidden, truth) < 1e-5f);
      CHECK(pp::bit_equal(again.hidden, first.hidden));
      CHECK(again.stats.computed < first.stats.computed);  // the captures came from the cache
    }
  }
}
