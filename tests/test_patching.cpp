// Interventions, metrics, activation patching over sites and path patching from senders to receivers.
#include <catch2/catch.hpp>
#include <cmath>

#include "helpers.hpp"
#include "models/safetensors.hpp"
#include "pathpatch/analysis.hpp"
#include "pathpatch/patching.hpp"
#include "viz/heatmap.hpp"

namespace pp = pathpatch;

namespace {

// Differ at position 4 only.
pp::Batch clean() { return pp::Batch::from_rows({{3, 14, 15, 92, 65, 35, 89}, {7, 7, 1, 2, 3, 4, 5}}); }
pp::Batch corrupt() { return pp::Batch::from_rows({{3, 14, 15, 92, 11, 35, 89}, {7, 7, 1, 2, 9, 4, 5}}); }

pp::Result plain(const pp::Model& m, const pp::Batch& b, std::vector<pp::Intervention> ivs = {}) {
  pp::RunOptions o;
  o.interventions = std::move(ivs);
  return pp::forward(m, b, o);
}

pp::Metric logit_diff() { return pp::Metric::logit_diff({40, 41}, {50, 51}); }

}  // namespace

TEST_CASE("zero, add and set change exactly the selected heads and positions, in order", "[interventions]") {
  const pp::Model& m = pptest::model("gpt2");
  pp::Result r = plain(m, clean(), {pp::probe("z1", "before"), pp::zero("z1", {{2}, {3, -1}}), pp::probe("z1", "after")});
  const pp::Tensor &before = r.probe("before"), &after = r.probe("after");
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 7; ++t)
      for (int64_t h = 0; h < 4; ++h)
        for (int64_t e = 0; e < 16; ++e) {
          bool selected = h == 2 && (t == 3 || t == 6);
          CHECK(after.at({b, t, h, e}) == (selected ? 0.0f : before.at({b, t, h, e})));
        }
  // Add a [H, E] value (broadcast over batch and positions) to head 1 only.
  pp::Tensor delta = pp::Tensor::full({4, 16}, 0.5f);
  pp::Result a = plain(m, clean(), {pp::add("blocks.0.hook_resid_pre", pp::Tensor::full({64}, 1.0f)), pp::probe("resid_pre0"),
                                    pp::add("z0", delta, {{1}, {}}), pp::probe("z0")});
  pp::Tensor base = plain(m, clean(), {pp::probe("resid_pre0"), pp::probe("z0")}).probe("resid_pre0");
  CHECK(a.probe("resid_pre0").at({0, 2, 5}) == base.at({0, 2, 5}) + 1.0f);
  pp::Result s = plain(m, clean(), {pp::set("z0", pp::Tensor::full({16}, 2.0f), {{0}, {}}), pp::probe("z0")});
  CHECK(s.probe("z0").at({1, 4, 0, 7}) == 2.0f);
  CHECK(s.probe("z0").at({1, 4, 1, 7}) != 2.0f);
}

TEST_CASE("mean ablation: set an activation to its mean over a dataset", "[interventions]") {
  const pp::Model& m = pptest::model("gpt2");
  pp::Tensor z = plain(m, corrupt(), {pp::probe("z1")}).probe("z1");  // [B, T, H, E]
  pp::Tensor mean({7, 4, 16});                                        // per position, over the batch
  for (int64_t i = 0; i < mean.numel(); ++i) mean.data_mut()[i] = (z.data()[i] + z.data()[i + mean.numel()]) / 2;
  pp::Result r = plain(m, clean(), {pp::set("z1", mean, {{3}, {}}), pp::probe("z1")});
  CHECK(r.probe("z1").at({0, 5, 3, 2}) == mean.at({5, 3, 2}));
  CHECK(r.probe("z1").at({1, 5, 3, 2}) == mean.at({5, 3, 2}));
}

TEST_CASE("a probe does not change the computation; a cached step is recomputed to record it", "[interventions]") {
  const pp::Model& m = pptest::model("llama-gqa");
  auto cache = std::make_shared<pp::Cache>();
  pp::RunOptions o;
  o.cache = cache;
  pp::Result first = pp::forward(m, clean(), o);
  o.interventions = {pp::probe("pattern1"), pp::probe("result0"), pp::probe("k1")};
  pp::Result again = pp::forward(m, clean(), o);
  CHECK(pp::bit_equal(first.hidden, again.hidden));
  CHECK(again.probe("pattern1").shape() == pp::Shape{2, 4, 7, 7});
  CHECK(again.probe("result0").shape() == pp::Shape{2, 7, 4, 64});
  CHECK(again.probe("k1").shape() == pp::Shape{2, 7, 2, 16});  // key/value heads
}

TEST_CASE("bad interventions are refused", "[interventions][refuse]") {
  const pp::Model& m = pptest::model("gpt2");
  CHECK_THROWS_WITH(plain(m, clean(), {pp::zero("blocks.1.attn.hook_zz")}),
                    Catch::Contains("no activation named") && Catch::Contains("blocks.1.attn.hook_z"));
  CHECK_THROWS_WITH(plain(m, clean(), {pp::zero("z1", {{4}, {}})}), Catch::Contains("head 4 is out of range"));
  CHECK_THROWS_WITH(plain(m, clean(), {pp::zero("z1", {{}, {7}})}), Catch::Contains("position 7 is out of range"));
  CHECK_THROWS_WITH(plain(m, clean(), {pp::zero("resid_pre1", {{0}, {}})}), Catch::Contains("no head axis"));
  CHECK_THROWS_WITH(plain(m, clean(), {pp::add("z1", pp::Tensor({3}))}), Catch::Contains("trailing axes"));
  CHECK_THROWS_WITH(plain(m, clean(), {pp::replace("z1", 1)}), Catch::Contains("source input 1 does not exist"));
}

TEST_CASE("metrics on plain runs", "[metrics]") {
  const pp::Model& m = pptest::model("gpt2");
  pp::Result c = pp::forward(m, clean()), k = pp::forward(m, corrupt());
  auto direct_diff = [&](const pp::Tensor& logits) {
    float s = 0;
    for (int64_t b = 0; b < 2; ++b) s += logits.at({b, 6, b == 0 ? 40 : 41}) - logits.at({b, 6, b == 0 ? 50 : 51});
    return s / 2;
  };
  pp::Scorer ld(m, logit_diff(), clean(), c.hidden, k.hidden);
  CHECK(ld.mean(c.hidden) == Approx(direct_diff(c.logits)).margin(1e-5));
  CHECK(ld.clean_value() == Approx(direct_diff(c.logits)).margin(1e-5));
  pp::Scorer norm(m, pp::Metric::normalized_logit_diff({40, 41}, {50, 51}), clean(), c.hidden, k.hidden);
  CHECK(norm.mean(c.hidden) == Approx(1.0f).margin(1e-5));
  CHECK(norm.mean(k.hidden) == Approx(0.0f).margin(1e-5));
  pp::Scorer kl(m, pp::Metric::kl(), clean(), c.hidden, k.hidden);
  CHECK(kl.mean(c.hidden) == Approx(0.0f).margin(1e-6));
  CHECK(kl.mean(k.hidden) > 0.0f);
  pp::Scorer prob(m, pp::Metric::prob({40, 41}), clean(), c.hidden, k.hidden);
  pp::Scorer lp(m, pp::Metric::log_prob({40, 41}), clean(), c.hidden, k.hidden);
  std::vector<float> p = prob.per_example(c.hidden), l = lp.per_example(c.hidden);
  for (int b = 0; b < 2; ++b) CHECK(std::log(p[b]) == Approx(l[b]).margin(1e-5));
  // Cross-entropy of the next clean token at positions 0..5, by hand from the full logits.
  pp::Scorer ce(m, pp::Metric::cross_entropy(), clean(), c.hidden, k.hidden);
  double manual = 0;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 6; ++t) {
      double mx = -1e30, sum = 0;
      for (int64_t v = 0; v < 101; ++v) mx = std::max(mx, double(c.logits.at({b, t, v})));
      for (int64_t v = 0; v < 101; ++v) sum += std::exp(double(c.logits.at({b, t, v})) - mx);
      manual += -(c.logits.at({b, t, clean().id(b, t + 1)}) - mx - std::log(sum)) / 12.0;
    }
  CHECK(ce.mean(c.hidden) == Approx(manual).margin(1e-4));
  CHECK_THROWS_AS(pp::Scorer(m, pp::Metric::logit_diff({1}, {2}), clean(), c.hidden, k.hidden), pp::InputError);
  CHECK_THROWS_AS(pp::Scorer(m, pp::Metric::prob({1, 500}), clean(), c.hidden, k.hidden), pp::InputError);
}

TEST_CASE("a user metric is called with the logits at the scored positions", "[metrics]") {
  const pp::Model& m = pptest::model("gpt2");
  pp::Result c = pp::forward(m, clean()), k = pp::forward(m, corrupt());
  std::vector<pp::Shape> seen;
  pp::MetricFn diff = [&](const pp::Tensor& logits) {  // [B, P, V]
    seen.push_back(logits.shape());
    std::vector<float> out;
    for (int64_t b = 0; b < logits.size(0); ++b)
      out.push_back(logits.at({b, 0, b == 0 ? 40 : 41}) - logits.at({b, 0, b == 0 ? 50 : 51}));
    return out;
  };
  pp::Scorer mine(m, pp::Metric::custom("my difference", diff), clean(), c.hidden, k.hidden);
  pp::Scorer builtin(m, logit_diff(), clean(), c.hidden, k.hidden);
  CHECK(mine.metric().name() == "my difference");
  CHECK(seen.at(0) == pp::Shape{2, 1, 101});
  CHECK(mine.clean_value() == Approx(builtin.clean_value()).margin(1e-4));
  CHECK(mine.corrupted_value() == Approx(builtin.corrupted_value()).margin(1e-4));
  pp::SweepResult a = pp::sweep_senders(m, clean(), corrupt(), {pp::Receiver::logits()}, pp::Metric::custom("d", diff));
  pp::SweepResult b = pp::sweep_senders(m, clean(), corrupt(), {pp::Receiver::logits()}, logit_diff());
  for (int64_t i = 0; i < a.values.numel(); ++i) CHECK(a.values.data()[i] == Approx(b.values.data()[i]).margin(1e-4));

  auto returns = [](std::vector<float> v) { return pp::Metric::custom("bad", [v](const pp::Tensor&) { return v; }); };
  CHECK_THROWS_WITH(pp::Scorer(m, returns({1, 2, 3}), clean(), c.hidden, k.hidden),
                    Catch::Contains("returned 3 values for a batch of 2 rows"));
  CHECK_THROWS_WITH(pp::Scorer(m, returns({1, NAN}), clean(), c.hidden, k.hidden),
                    Catch::Contains("for row 1 (a sweep needs finite values)"));
  CHECK_THROWS_AS(pp::Scorer(m, pp::Metric::custom("none", nullptr), clean(), c.hidden, k.hidden), pp::InputError);
}

TEST_CASE("activation patching over sites: shapes, position modes and known values", "[patching]") {
  const pp::Model& m = pptest::model("gpt2");
  pp::Sites sites;
  sites.names = {"resid_pre", "z", "pattern"};
  sites.positions = pp::SitePositions::Each;
  auto out = pp::activation_patching(m, clean(), corrupt(), sites, pp::Metric::normalized_logit_diff({40, 41}, {50, 51}));
  CHECK(out["resid_pre"].values.shape() == pp::Shape{2, 7});
  CHECK(out["z"].values.shape() == pp::Shape{2, 7, 4});
  CHECK(out["z"].axes == std::vector<std::string>{"layer", "position", "head"});
  // Clean and corrupted agree before position 4: patching there changes nothing (0, up to the
  // rounding of recomputing positions t.. on their own, ~1e-5 of the clean-corrupted gap).
  for (int L = 0; L < 2; ++L)
    for (int t = 0; t < 4; ++t) CHECK(out["resid_pre"].values.at({L, t}) == Approx(0.0f).margin(1e-4));
  // Patching the whole clean residual into layer 0, at the differing position, restores clean.
  CHECK(out["resid_pre"].values.at({0, 4}) == Approx(1.0f).margin(1e-5));

  sites.names = {"z"};
  sites.positions = pp::SitePositions::LastK;
  sites.k = 2;
  CHECK(pp::activation_patching(m, clean(), corrupt(), sites, logit_diff())["z"].values.shape() == pp::Shape{2, 2, 4});
  sites.positions = pp::SitePositions::Custom;
  sites.custom = {4, -1};
  auto custom = pp::activation_patching(m, clean(), corrupt(), sites, logit_diff());
  CHECK(custom["z"].labels[1] == std::vector<std::string>{"4", "6"});
  sites.positions = pp::SitePositions::CustomConstant;
  sites.custom = {0, 1, 2, 3, 4, 5, 6};
  auto constant = pp::activation_patching(m, clean(), corrupt(), sites, logit_diff());
  sites.positions = pp::SitePositions::All;
  auto all = pp::activation_patching(m, clean(), corrupt(), sites, logit_diff());
  CHECK(constant["z"].values.shape() == pp::Shape{2, 4});
  CHECK(pp::max_abs_diff(constant["z"].values, all["z"].values) < 1e-6f);
  sites.positions = pp::SitePositions::Last;
  CHECK(pp::activation_patching(m, clean(), corrupt(), sites, logit_diff())["z"].values.shape() == pp::Shape{2, 4});

  sites.names = {"zz"};
  CHECK_THROWS_WITH(pp::activation_patching(m, clean(), corrupt(), sites, logit_diff()), Catch::Contains("closest"));
}

TEST_CASE("activation patching sweep equals the reference on the golden inputs", "[patching][golden]") {
  const pp::Model& m = pptest::model("gpt2");
  auto g = pp::SafetensorsFile::open(pptest::golden("gpt2") / "patching.safetensors");
  pp::Batch c = pptest::batch_from(g.load("input_ids_clean"), g.load("attention_mask"));
  pp::Batch k = pptest::batch_from(g.load("input_ids_corrupt"), g.load("attention_mask"));
  pp::Tensor ref = g.load("act_patch_z_logits");  // [L, H, B, T, V]: clean run, corrupted z of one head
  pp::Sites sites;
  sites.names = {"z"};
  pp::PatchingOptions opt;
  opt.direction = pp::Direction::Noise;
  pp::SweepResult z = pp::activation_patching(m, c, k, sites, logit_diff(), opt)["z"];
  for (int L = 0; L < 2; ++L)
    for (int h = 0; h < 4; ++h) {
      float expect = (ref.at({L, h, 0, 6, 40}) - ref.at({L, h, 0, 6, 50}) + ref.at({L, h, 1, 6, 41}) -
                      ref.at({L, h, 1, 6, 51})) / 2;
      CHECK(z.values.at({L, h}) == Approx(expect).margin(2e-5));
    }
}

TEST_CASE("path patching: senders to every receiver together equal activation patching", "[patching]") {
  for (const char* name : {"gpt2", "llama-gqa"}) {
    const pp::Model& m = pptest::model(name);
    // Head 0.1's corrupted output along every path it has: to the logits and to every input of
    // every layer-1 head, MLPs on the way included.
    std::vector<pp::Receiver> all = {pp::Receiver::logits()};
    for (int h = 0; h < m.config().n_heads; ++h) all.push_back({pp::Receiver::Input, 1, h});
    pp::PathPatchingOptions opt;
    opt.mlps_on_path = true;
    pp::Result paths = pp::path_patch(m, clean(), corrupt(), {{0, 1}}, all, opt);
    pp::RunOptions ro;
    ro.interventions = {pp::replace("z0", 1, {{1}, {}})};
    pp::Result act = pp::run(m, {clean(), corrupt()}, [](const pp::Path&) { return 0; }, pptest::no_split, ro);
    INFO(name);
    CHECK(pp::max_abs_diff(paths.hidden, act.hidden) < 1e-5f);
    // Only the direct path is a different, smaller effect.
    pp::Result direct = pp::path_patch(m, clean(), corrupt(), {{0, 1}}, {pp::Receiver::logits()});
    CHECK(pp::max_abs_diff(direct.hidden, act.hidden) > 1e-3f);
  }
}

TEST_CASE("sweeps keep each batch row's value; the value is their mean", "[patching]") {
  const pp::Model& m = pptest::model("gpt2");
  pp::SweepResult s = pp::sweep_senders(m, clean(), corrupt(), {pp::Receiver::logits()}, logit_diff(), {}, true);
  REQUIRE(s.per_example.shape() == pp::Shape{2, 5, 2});
  pp::Result c = pp::forward(m, clean()), k = pp::forward(m, corrupt());
  auto row_diff = [](const pp::Tensor& logits, int64_t b) {
    return logits.at({b, 6, b == 0 ? 40 : 41}) - logits.at({b, 6, b == 0 ? 50 : 51});
  };
  for (int64_t b = 0; b < 2; ++b) {
    CHECK(s.clean_rows[b] == Approx(row_diff(c.logits, b)).margin(1e-4));
    CHECK(s.corrupted_rows[b] == Approx(row_diff(k.logits, b)).margin(1e-4));
  }
  for (int layer = 0; layer < 2; ++layer)
    for (int head = 0; head < 5; ++head) {
      const float* rows = s.per_example.data() + (layer * 5 + head) * 2;
      CHECK(s.values.at({layer, head}) == pp::metric_mean({rows[0], rows[1]}));  // bit for bit
      pp::Result one = pp::path_patch(m, clean(), corrupt(), {{layer, head == 4 ? -1 : head}}, {pp::Receiver::logits()});
      for (int64_t b = 0; b < 2; ++b) CHECK(rows[b] == Approx(row_diff(one.logits, b)).margin(1e-4));
    }
  // Activation patching too, with the rows of a normalised metric normalised by the batch's means.
  pp::Sites sites;
  sites.names = {"resid_pre"};
  auto norm = pp::activation_patching(m, clean(), corrupt(), sites,
                                      pp::Metric::normalized_logit_diff({40, 41}, {50, 51}))["resid_pre"];
  REQUIRE(norm.per_example.shape() == pp::Shape{2, 2});
  CHECK(norm.per_example.at({0, 0}) == Approx(norm.clean_rows[0]).margin(1e-5));  // layer 0, all positions: clean
  CHECK(norm.clean_rows[0] + norm.clean_rows[1] == Approx(2.0f).margin(1e-5));
  // Changes from a baseline are per row: each row from its own unpatched value.
  pp::SweepResult change = pp::viz::relative_to(s, pp::viz::Baseline::Clean);
  for (int64_t b = 0; b < 2; ++b)
    CHECK(change.per_example.at({1, 2, b}) == s.per_example.at({1, 2, b}) - s.clean_rows[b]);
}

TEST_CASE("path patching sweeps and refusals", "[patching][refuse]") {
  const pp::Model& m = pptest::model("gpt2");
  pp::SweepResult s = pp::sweep_senders(m, clean(), corrupt(), {pp::Receiver::logits()}, logit_diff(), {}, true);
  CHECK(s.values.shape() == pp::Shape{2, 5});
  CHECK(s.labels[1].back() == "mlp");
  pp::SweepResult r = pp::sweep_receivers(m, clean(), corrupt(), {{0, 2}}, pp::Receiver::V, logit_diff());
  CHECK(std::isnan(r.values.at({0, 0})));  // layer 0 cannot receive from layer 0
  CHECK_FALSE(std::isnan(r.values.at({1, 3})));
  CHECK_THROWS_WITH(pp::path_patch(m, clean(), corrupt(), {{1, 0}}, {{pp::Receiver::Q, 1, 2}}),
                    Catch::Contains("does not come before receiver a1.head2"));
  CHECK_THROWS_WITH(pp::path_patch(m, clean(), corrupt(), {{0, 9}}, {pp::Receiver::logits()}),
                    Catch::Contains("sender head 9 does not exist"));
}

TEST_CASE("no-ops are warned about, sound experiments are not", "[patching][warnings]") {
  const pp::Model& m = pptest::model("gpt2");
  auto has = [](const std::vector<std::string>& ws, const std::string& text) {
    for (const std::string& w : ws)
      if (w.find(text) != std::string::npos) return true;
    return false;
  };
  pp::SweepResult same = pp::sweep_senders(m, clean(), clean(), {pp::Receiver::logits()}, logit_diff());
  CHECK(has(same.warnings, "the clean and corrupted inputs are identical"));
  pp::SweepResult empty = pp::sweep_senders(m, clean(), corrupt(), {{pp::Receiver::Q, 0, 0}}, logit_diff());
  CHECK(has(empty.warnings, "has an experiment"));
  // A logit difference the clean run gets wrong on some rows.
  pp::Result c = pp::forward(m, clean());
  std::vector<int32_t> answer, wrong;
  for (int64_t b = 0; b < 2; ++b) {
    const bool prefers_40 = c.logits.at({b, 6, 40}) > c.logits.at({b, 6, 41});
    answer.push_back(prefers_40 ? 41 : 40);  // the token the clean run likes less
    wrong.push_back(prefers_40 ? 40 : 41);
  }
  pp::SweepResult backwards = pp::sweep_senders(m, clean(), corrupt(), {pp::Receiver::logits()},
                                                pp::Metric::logit_diff(answer, wrong));
  CHECK(has(backwards.warnings, "on 2 of 2 rows the clean run prefers the wrong token"));
  pp::SweepResult sound = pp::sweep_senders(m, clean(), corrupt(), {pp::Receiver::logits()},
                                            pp::Metric::logit_diff(wrong, answer));
  CHECK(sound.warnings.empty());

  // Path rules: a rule that matches no path, and the second of two copies, change nothing.
  pp::PathRules rules;
  rules.add("a1 a0", 1).add("a1.head2", 1).add("a1.head2", 1);
  pp::Result r = pp::run(m, {clean(), corrupt()}, rules);
  REQUIRE(r.warnings.size() == 2);
  CHECK_THAT(r.warnings[0], Catch::Contains("the rule 'a1 a0 => 1' changes nothing"));
  CHECK_THAT(r.warnings[1], Catch::Contains("the rule 'a1.head2 => 1' changes nothing"));
  pp::PathRules one;
  one.add("a1.head2", 1);
  CHECK(pp::run(m, {clean(), corrupt()}, one).warnings.empty());
}

TEST_CASE("run without predicates: input 0's forward, with interventions that read the other inputs", "[patching]") {
  const pp::Model& m = pptest::model("gpt2");
  pp::RunOptions none;
  CHECK(pp::bit_equal(pp::run(m, {clean(), corrupt()}, none).logits, pp::forward(m, clean()).logits));
  pp::RunOptions patched;
  patched.interventions = {pp::replace("z1", 1, {{2}, {}})};
  pp::RunOptions by_hand;
  by_hand.interventions = {pp::replace("z1", 1, {{2}, {}})};
  pp::Result r = pp::run(m, {clean(), corrupt()}, patched);
  pp::Result l = pp::run(m, {clean(), corrupt()}, [](const pp::Path&) { return 0; }, pptest::no_split, by_hand);
  CHECK(pp::bit_equal(r.logits, l.logits));
  CHECK_FALSE(pp::bit_equal(r.logits, pp::forward(m, clean()).logits));
}

TEST_CASE("head_attention: one head's pattern on one row, padding left out", "[analysis]") {
  const pp::Model& m = pptest::model("gpt2");
  pp::Batch padded = pp::Batch::from_rows({{3, 14, 15, 92}, {7, 7}});
  pp::RunOptions o;
  o.interventions = {pp::probe("pattern1")};
  const pp::Tensor all = pp::forward(m, padded, o).probe("pattern1");
  pp::HeadAttention a = pp::head_attention(m, padded, 1, 2, 1);
  REQUIRE(a.pattern.shape() == pp::Shape{2, 2});
  CHECK(a.tokens == std::vector<std::string>{"7", "7"});  // no tokenizer: ids
  for (int64_t q = 0; q < 2; ++q)
    for (int64_t k = 0; k < 2; ++k) CHECK(a.pattern.at({q, k}) == all.at({1, 2, q + 2, k + 2}));
  CHECK(pp::head_attention(m, padded, 0, 0, 0).pattern.shape() == pp::Shape{4, 4});
  CHECK_THROWS_WITH(pp::head_attention(m, padded, 2, 0, 0), Catch::Contains("layer 2: the model has layers 0..1"));
  CHECK_THROWS_WITH(pp::head_attention(m, padded, 0, 4, 0), Catch::Contains("head 4: the model has heads 0..3"));
  CHECK_THROWS_WITH(pp::head_attention(m, padded, 0, 0, 2), Catch::Contains("row 2: the input has rows 0..1"));
}
