// Gradients (models/backward.cpp, pathpatch/attribution.hpp) against torch autograd in float64
// (tools/make_gradient_golden.py), against finite differences of the engine's own forward, and
// attribution patching against the derivative of exact patching.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>

#include "helpers.hpp"
#include "models/safetensors.hpp"
#include "pathpatch/attribution.hpp"

namespace pp = pathpatch;

namespace {

std::vector<int32_t> ids_of(const pp::Tensor& t) {
  std::vector<int32_t> out;
  for (int64_t i = 0; i < t.numel(); ++i) out.push_back(static_cast<int32_t>(t.data()[i]));
  return out;
}

float largest(const pp::Tensor& t) {
  float m = 0;
  for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::fabs(t.data()[i]));
  return m;
}

// |ours - theirs| relative to the reference tensor's largest value (the measure).
float relative_diff(const pp::Tensor& ours, const pp::Tensor& theirs) {
  return pptest::max_diff(ours, theirs) / std::max(largest(theirs), 1e-30f);
}

struct GoldenGradients {
  pp::SafetensorsFile file;
  pp::Batch input, corrupted;
  std::vector<int32_t> answer, wrong;
};

GoldenGradients golden_gradients(const std::string& name) {
  auto f = pp::SafetensorsFile::open(pptest::golden(name) / "gradients.safetensors");
  pp::Tensor mask = f.load("attention_mask");
  pp::Batch input = pptest::batch_from(f.load("input_ids"), mask);
  pp::Batch corrupted = pptest::batch_from(f.load("corrupted_ids"), mask);
  std::vector<int32_t> answer = ids_of(f.load("answer")), wrong = ids_of(f.load("wrong"));
  return GoldenGradients{std::move(f), input, corrupted, answer, wrong};
}

double logit_diff_of(const pp::Tensor& logits, const std::vector<int32_t>& answer, const std::vector<int32_t>& wrong) {
  const int64_t B = logits.size(0), T = logits.size(1);
  double sum = 0;
  for (int64_t b = 0; b < B; ++b) sum += logits.at({b, T - 1, answer[b]}) - logits.at({b, T - 1, wrong[b]});
  return sum / static_cast<double>(B);
}

const char* const kFamilies[] = {"gpt2", "gpt2-attn-only", "gpt2-untied", "llama-gqa", "llama-tied", "llama3",
                                 "llama-linear", "mistral", "qwen2", "gemma2", "pythia", "neox-sequential", "gpt-neo"};

}  // namespace

TEST_CASE("gradients of every activation match torch autograd, every family", "[gradients][golden]") {
  constexpr float kTolerance = 1e-4f;  // relative to each tensor's largest value
  for (const char* name : kFamilies) {
    const pp::Model& m = pptest::model(name);
    GoldenGradients g = golden_gradients(name);
    std::vector<std::string> all;
    for (const auto& a : m.graph().activations()) all.push_back(a.name);
    pp::Gradients ours = pp::gradients(m, g.input, pp::Metric::logit_diff(g.answer, g.wrong), all);
    CHECK(ours.value == Approx(g.file.load("logit_diff/value").data()[0]).epsilon(1e-5));
    float worst = 0;
    std::string worst_name;
    for (const std::string& a : all) {
      INFO(name << ": d logit_diff / d " << a);
      REQUIRE(g.file.find("logit_diff/" + a) != nullptr);  // every activation the graph names
      pp::Tensor theirs = g.file.load("logit_diff/" + a);
      REQUIRE(ours.gradient(a).shape() == theirs.shape());
      const float d = relative_diff(ours.gradient(a), theirs);
      CHECK(d <= kTolerance);
      if (d >= worst) worst = d, worst_name = a;
    }
    // The other metrics: their own head, the shared body.
    float worst_other = 0;
    const std::vector<pp::Batch> refs{g.input, g.corrupted};
    const std::pair<const char*, pp::Metric> metrics[] = {
        {"prob", pp::Metric::prob(g.answer)},
        {"log_prob", pp::Metric::log_prob(g.answer)},
        {"cross_entropy", pp::Metric::cross_entropy()},
        {"kl", pp::Metric::kl()},
        {"normalized", pp::Metric::normalized_logit_diff(g.answer, g.wrong)},
    };
    for (const auto& [key, metric] : metrics) {
      pp::GradientOptions o;
      // KL's reference distribution is the corrupted run's (a clean one would make it zero).
      o.references = std::string(key) == "kl" ? std::vector<pp::Batch>{g.corrupted, g.input} : refs;
      pp::Gradients r = pp::gradients(m, g.input, metric, {"ln_final", "resid_pre0"}, o);
      INFO(name << ": " << key);
      CHECK(r.value == Approx(g.file.load(std::string(key) + "/value").data()[0]).epsilon(1e-4).margin(1e-6));
      // The normalised difference divides by (clean - corrupted), a difference of two float32 means
      // close together on these random models: its rounding (up to ~1e-4 here) scales the whole
      // gradient, whatever the backward does.
      const float tolerance = std::string(key) == "normalized" ? 5e-4f : kTolerance;
      for (const char* a : {"ln_final.hook_normalized", "blocks.0.hook_resid_pre"}) {
        const float d = relative_diff(r.gradient(a), g.file.load(std::string(key) + "/" + a));
        INFO(a << " " << d);
        CHECK(d <= tolerance);
        if (tolerance == kTolerance) worst_other = std::max(worst_other, d);
      }
    }
    std::printf("gradients %-16s worst relative |diff| %.1e (%s), other metrics %.1e\n", name, worst,
                worst_name.c_str(), worst_other);
  }
}

TEST_CASE("gradients equal central differences of the engine's own forward", "[gradients]") {
  // Independent of the torch reference: nudge one element of an activation through an `add`
  // intervention, run the engine's forward, and compare the slope with the gradient.
  struct Probe {
    const char* model;
    const char* act;
    std::vector<int64_t> at;
  };
  const Probe probes[] = {
      {"llama-gqa", "resid_pre1", {0, 6, 3}},    {"llama-gqa", "k0", {2, 5, 1, 2}},
      {"llama-gqa", "pattern1", {1, 2, 6, 4}},    {"llama-gqa", "pre0", {0, 6, 17}},
      {"gemma2", "scores1", {0, 3, 6, 5}},        {"gemma2", "z0", {2, 6, 1, 7}},
      {"gemma2", "ln2_post1", {1, 6, 9}},         {"pythia", "v0", {0, 4, 2, 3}},
      {"pythia", "resid_pre0", {2, 6, 0}},        {"gpt-neo", "q1", {0, 6, 0, 1}},
      {"gpt2-attn-only", "result0", {1, 6, 2, 5}},
  };
  for (const Probe& p : probes) {
    const pp::Model& m = pptest::model(p.model);
    GoldenGradients g = golden_gradients(p.model);
    pp::Gradients grad = pp::gradients(m, g.input, pp::Metric::logit_diff(g.answer, g.wrong), {p.act});
    const pp::Tensor& dg = grad.gradient(p.act);
    REQUIRE(p.at.size() == dg.shape().size());
    int64_t flat = 0;
    for (size_t i = 0; i < p.at.size(); ++i) {
      REQUIRE(p.at[i] < dg.size(static_cast<int>(i)));
      flat = flat * dg.size(static_cast<int>(i)) + p.at[i];
    }
    const float analytic = dg.data()[flat];
    auto metric_at = [&](float eps) {
      pp::Tensor delta = pp::Tensor::full(dg.shape(), 0.0f);
      delta.data_mut()[flat] = eps;
      pp::RunOptions o;
      o.interventions.push_back(pp::add(p.act, delta));
      return logit_diff_of(pp::forward(m, g.input, o).logits, g.answer, g.wrong);
    };
    const float eps = 1e-2f;
    const double slope = (metric_at(eps) - metric_at(-eps)) / (2 * eps);
    INFO(p.model << " " << p.act << ": gradient " << analytic << ", central difference " << slope);
    CHECK(std::fabs(slope - analytic) <= 2e-3 + 2e-2 * std::fabs(analytic));
    CHECK(std::fabs(analytic) > 1e-4);  // a probe that tests something
  }
}

TEST_CASE("attribution patching is the derivative of exact patching along the patch", "[gradients][attribution]") {
  const pp::Model& m = pptest::model("llama-gqa");
  GoldenGradients g = golden_gradients("llama-gqa");
  const pp::Metric metric = pp::Metric::logit_diff(g.answer, g.wrong);
  for (pp::Direction dir : {pp::Direction::Noise, pp::Direction::Denoise}) {
    const bool noise = dir == pp::Direction::Noise;
    const pp::Batch& base = noise ? g.input : g.corrupted;
    const pp::Batch& source = noise ? g.corrupted : g.input;
    pp::Sites sites;
    sites.names = {"z", "resid_mid", "v"};
    sites.positions = pp::SitePositions::Each;
    pp::PatchingOptions o;
    o.direction = dir;
    auto atp = pp::attribution_patching(m, g.input, g.corrupted, sites, metric, o);
    auto exact = pp::activation_patching(m, g.input, g.corrupted, sites, metric, o);
    for (const std::string& site : sites.names) {
      const pp::SweepResult &a = atp.at(site), &x = exact.at(site);
      INFO(site << (noise ? " noising" : " denoising"));
      CHECK(a.axes == x.axes);
      CHECK(a.labels == x.labels);
      REQUIRE(a.values.shape() == x.values.shape());
      REQUIRE(a.per_example.shape() == x.per_example.shape());
      CHECK(a.clean == x.clean);
      CHECK(a.corrupted == x.corrupted);
      CHECK(a.filled.size() == static_cast<size_t>(a.values.numel()));
    }
    // A few cells: AtP's change equals d/de metric(base with site += e * (source - base)) at e = 0.
    struct Cell {
      const char* site;
      int layer, position, head;
    };
    for (const Cell& c : {Cell{"z", 1, 6, 2}, Cell{"z", 0, 4, 1}, Cell{"resid_mid", 0, 5, -1}, Cell{"v", 1, 3, 1}}) {
      const std::string act = c.site + std::to_string(c.layer);
      pp::RunOptions probe;
      probe.interventions.push_back(pp::probe(act));
      const pp::Tensor from = pp::forward(m, base, probe).probe(act), to = pp::forward(m, source, probe).probe(act);
      auto metric_at = [&](float eps) {
        pp::Tensor delta = pp::Tensor::full(from.shape(), 0.0f);  // source - base at the cell only
        const int64_t B = from.size(0), T = from.size(1), inner = from.numel() / (B * T);
        const int64_t heads = c.head >= 0 ? from.size(2) : 1, per_head = inner / heads;
        for (int64_t b = 0; b < B; ++b)
          for (int64_t i = 0; i < per_head; ++i) {
            const int64_t k = (b * T + c.position) * inner + (c.head >= 0 ? c.head : 0) * per_head + i;
            delta.data_mut()[k] = eps * (to.data()[k] - from.data()[k]);
          }
        pp::RunOptions shifted;
        shifted.interventions.push_back(pp::add(act, delta));
        return logit_diff_of(pp::forward(m, base, shifted).logits, g.answer, g.wrong);
      };
      const float eps = 1e-2f;
      const double slope = (metric_at(eps) - metric_at(-eps)) / (2 * eps);
      const pp::SweepResult& r = atp.at(c.site);
      const float base_value = noise ? r.clean : r.corrupted;
      const float cell = c.head >= 0 ? r.values.at({c.layer, c.position, c.head}) : r.values.at({c.layer, c.position});
      INFO(act << " position " << c.position << " head " << c.head << (noise ? " noising" : " denoising")
               << ": AtP change " << cell - base_value << ", slope " << slope);
      CHECK(std::fabs((cell - base_value) - slope) <= 1e-3 + 1e-2 * std::fabs(slope));
      CHECK(std::fabs(slope) > 1e-3);
    }
  }
}

TEST_CASE("attribution patching: identical inputs change nothing; the per-example rows average to the values",
          "[gradients][attribution]") {
  const pp::Model& m = pptest::model("gpt2");
  GoldenGradients g = golden_gradients("gpt2");
  pp::Sites sites;
  sites.names = {"z", "pattern", "result", "attn_out", "mlp_out", "resid_pre", "q", "k"};
  auto same = pp::attribution_patching(m, g.input, g.input, sites, pp::Metric::logit_diff(g.answer, g.wrong));
  for (const auto& [site, r] : same) {
    INFO(site);
    for (int64_t i = 0; i < r.values.numel(); ++i) CHECK(r.values.data()[i] == r.clean);
    CHECK(!r.warnings.empty());
  }
  sites.positions = pp::SitePositions::LastK;
  sites.k = 3;
  auto atp = pp::attribution_patching(m, g.input, g.corrupted, sites, pp::Metric::logit_diff(g.answer, g.wrong));
  for (const auto& [site, r] : atp) {
    const int64_t B = g.input.size;
    for (int64_t i = 0; i < r.values.numel(); ++i) {
      double mean = 0;
      for (int64_t b = 0; b < B; ++b) mean += r.per_example.data()[i * B + b];
      INFO(site << " cell " << i);
      CHECK(r.values.data()[i] == Approx(mean / B).margin(1e-5));
    }
  }
}

TEST_CASE("gradients refuse what they cannot do, saying what and where", "[gradients][errors]") {
  const pp::Model& m = pptest::model("gpt2");
  GoldenGradients g = golden_gradients("gpt2");
  auto custom = pp::Metric::custom("mine", [](const pp::Tensor& l) { return std::vector<float>(l.size(0), 0.0f); });
  CHECK_THROWS_WITH(pp::gradients(m, g.input, custom, {"z0"}), Catch::Contains("cannot differentiate"));
  CHECK_THROWS_AS(pp::gradients(m, g.input, pp::Metric::logit_diff(g.answer, g.wrong), {"zz0"}), pp::NameError);
  CHECK_THROWS_WITH(pp::gradients(m, g.input, pp::Metric::kl(), {"z0"}), Catch::Contains("references"));
  pp::Gradients r = pp::gradients(m, g.input, pp::Metric::logit_diff(g.answer, g.wrong), {"z"});
  CHECK(r.grads.size() == static_cast<size_t>(m.config().n_layers));
  CHECK_THROWS_WITH(r.gradient("resid_pre0"), Catch::Contains("was asked for"));
  pp::Sites sites;
  sites.names = {"z"};
  CHECK_THROWS_WITH(pp::attribution_patching(m, g.input, g.corrupted, sites, custom), Catch::Contains("differentiate"));
}

TEST_CASE("gradients keep only the layers they need", "[gradients]") {
  const pp::Model& m = pptest::model("gpt2");
  GoldenGradients g = golden_gradients("gpt2");
  const pp::Metric metric = pp::Metric::logit_diff(g.answer, g.wrong);
  pp::Gradients top = pp::gradients(m, g.input, metric, {"ln_final"});
  pp::Gradients last = pp::gradients(m, g.input, metric, {"z1"});
  pp::Gradients all = pp::gradients(m, g.input, metric, {"embed"});
  CHECK(top.saved_bytes < last.saved_bytes);
  CHECK(last.saved_bytes < all.saved_bytes);
  // The same gradient, however far down the backward goes.
  pp::Gradients both = pp::gradients(m, g.input, metric, {"z1", "embed"});
  CHECK(pptest::max_diff(both.gradient("z1"), last.gradient("z1")) == 0.0f);
}

TEST_CASE("agreement of an estimate with the exact sweep: correlation and largest difference", "[attribution]") {
  pp::SweepResult exact, estimate;
  exact.values = pp::Tensor({2, 3});
  estimate.values = pp::Tensor({2, 3});
  const float e[] = {1, 2, 3, 4, 5, std::nanf("")}, a[] = {3, 5, 7, 9, 11.5f, 2};  // a = 2e + 1, but 11.5
  std::copy(e, e + 6, exact.values.data_mut());
  std::copy(a, a + 6, estimate.values.data_mut());
  const pp::Agreement g = pp::agreement(estimate, exact);
  CHECK(g.cells == 5);  // the NaN cell is left out
  CHECK(g.worst == Approx(6.5));
  // By hand: the correlation of (1..5), mean 3, with (3, 5, 7, 9, 11.5), mean 7.1.
  const double cov = (-2 * -4.1) + (-1 * -2.1) + (0 * -0.1) + (1 * 1.9) + (2 * 4.4);
  const double va = 4.1 * 4.1 + 2.1 * 2.1 + 0.1 * 0.1 + 1.9 * 1.9 + 4.4 * 4.4;
  CHECK(g.correlation == Approx(cov / std::sqrt(10.0 * va)).epsilon(1e-9));
  CHECK(g.correlation < 1.0);
  pp::SweepResult other;
  other.values = pp::Tensor({3, 2});
  CHECK_THROWS_WITH(pp::agreement(other, exact), Catch::Contains("[3, 2]") && Catch::Contains("[2, 3]"));
}
