// The logit lens and direct logit attribution (pathpatch/lens.hpp) against the model's own output
// and against the torch reference's activations; greedy generation (pathpatch/generate.hpp).
#include <catch2/catch.hpp>
#include <cmath>

#include "helpers.hpp"
#include "models/safetensors.hpp"
#include "pathpatch/analysis.hpp"
#include "pathpatch/generate.hpp"
#include "pathpatch/lens.hpp"

namespace pp = pathpatch;

namespace {

// Two distinct tokens per row, as answer and wrong.
std::pair<std::vector<int32_t>, std::vector<int32_t>> some_tokens(const pp::Model& m, int64_t rows) {
  std::vector<int32_t> a, w;
  for (int64_t b = 0; b < rows; ++b) {
    a.push_back(static_cast<int32_t>((7 + 13 * b) % m.config().vocab_size));
    w.push_back(static_cast<int32_t>((29 + 5 * b) % m.config().vocab_size));
  }
  return {a, w};
}

// The final norm by hand, in double, with the model's weights: the reference for a lens reading.
std::vector<double> norm_by_hand(const pp::Model& m, const float* x) {
  const int64_t D = m.config().d_model;
  const pp::NormWeights& w = m.final_norm_weights();
  const bool centred = w.b.defined();
  double mean = 0, ss = 0;
  if (centred)
    for (int64_t i = 0; i < D; ++i) mean += x[i] / static_cast<double>(D);
  for (int64_t i = 0; i < D; ++i) ss += (x[i] - mean) * (x[i] - mean);
  const double inv = 1.0 / std::sqrt(ss / D + m.config().norm_eps);
  std::vector<double> y(static_cast<size_t>(D));
  for (int64_t i = 0; i < D; ++i) y[i] = (x[i] - mean) * inv * w.w.data()[i] + (centred ? w.b.data()[i] : 0.0);
  return y;
}

const char* const kFamilies[] = {"gpt2", "gpt2-attn-only", "llama-gqa", "gemma2", "pythia", "gpt-neo", "qwen2"};

}  // namespace

TEST_CASE("the logit lens's last reading is the model's own output; the others are the residual through ln_final",
          "[lens]") {
  for (const char* name : kFamilies) {
    INFO(name);
    const pp::Model& m = pptest::model(name);
    const pp::Batch batch = pptest::golden_batch(name);
    const int64_t B = batch.size, T = batch.seq, V = m.config().vocab_size, D = m.config().d_model;
    const int n = m.config().n_layers;
    const pp::LogitLens lens = pp::logit_lens(m, batch);
    REQUIRE(lens.readings() == n + 1);
    CHECK(lens.labels.front() == "resid_pre0");
    CHECK(lens.labels.back() == "resid_post" + std::to_string(n - 1));

    const pp::Result plain = pp::forward(m, batch);
    const pp::Tensor last = lens.logits(m, -1);  // [n + 1, B, V]
    for (int64_t b = 0; b < B; ++b)
      for (int64_t v = 0; v < V; ++v)
        REQUIRE(last.at({n, b, v}) == Approx(plain.logits.at({b, T - 1, v})).margin(1e-5));

    // Each reading against the torch reference's residual stream, normalised by hand.
    auto ref = pp::SafetensorsFile::open(pptest::golden(name) / "batch.safetensors");
    float worst = 0;
    for (int L = 0; L < n; ++L) {
      const pp::Tensor resid = ref.load("blocks." + std::to_string(L) + ".hook_resid_pre");
      const pp::Tensor reading = lens.reading(L);
      for (int64_t row = 0; row < B * T; ++row) {
        if (!batch.real(row / T, row % T)) continue;
        const std::vector<double> y = norm_by_hand(m, resid.data() + row * D);
        for (int64_t i = 0; i < D; ++i)
          worst = std::max(worst, static_cast<float>(std::fabs(reading.data()[row * D + i] - y[i])));
      }
    }
    CHECK(worst < 2e-4f);

    // A metric of the last reading is the metric of the model.
    auto [answer, wrong] = some_tokens(m, B);
    const pp::Metric metric = pp::Metric::logit_diff(answer, wrong);
    const pp::Tensor scores = lens.score(m, metric);
    const pp::Scorer scorer(m, metric, batch, plain.hidden, plain.hidden);
    const std::vector<float> own = scorer.per_example(plain.hidden);
    for (int64_t b = 0; b < B; ++b) CHECK(scores.at({n, b}) == Approx(own[b]).margin(1e-5));

    // p(next token) at the last reading: the softmax of the model's logits, padding left out.
    const pp::Tensor probs = lens.next_token_probs(m);
    for (int64_t t = 0; t + 1 < T; ++t) {
      double sum = 0;
      int rows = 0;
      for (int64_t b = 0; b < B; ++b) {
        if (!batch.real(b, t)) continue;
        double z = 0;
        for (int64_t v = 0; v < V; ++v) z += std::exp(plain.logits.at({b, t, v}));
        sum += std::exp(plain.logits.at({b, t, batch.id(b, t + 1)})) / z;
        ++rows;
      }
      if (rows == 0)
        CHECK(std::isnan(probs.at({n, t})));
      else
        CHECK(probs.at({n, t}) == Approx(sum / rows).margin(1e-5));
    }
  }
}

TEST_CASE("direct logit attribution: the parts sum to the logit difference, every family", "[lens]") {
  for (const char* name : kFamilies) {
    INFO(name);
    const pp::Model& m = pptest::model(name);
    const pp::Batch batch = pptest::golden_batch(name);
    const int64_t B = batch.size, T = batch.seq;
    auto [answer, wrong] = some_tokens(m, B);
    const pp::Result plain = pp::forward(m, batch);
    for (int64_t position : {int64_t{-1}, int64_t{-3}}) {
      const pp::LogitAttribution dla = pp::direct_logit_attribution(m, batch, answer, wrong, position);
      const int64_t p = T + position;
      CHECK(dla.position == p);
      const int64_t C = static_cast<int64_t>(dla.components.size());
      for (int64_t b = 0; b < B; ++b) {
        double sum = 0;
        for (int64_t k = 0; k < C; ++k) sum += dla.per_example.at({k, b});
        const double la = plain.logits.at({b, p, answer[b]}), lw = plain.logits.at({b, p, wrong[b]});
        // Gemma-2 caps each logit; the parts add up to the difference of the uncapped ones.
        if (m.config().logit_softcap <= 0) CHECK(dla.total[b] == Approx(la - lw).margin(2e-5));
        CHECK(sum == Approx(dla.total[b]).margin(5e-5));
      }
    }
  }
}

TEST_CASE("direct logit attribution: each head's share from the torch reference's activations", "[lens]") {
  for (const char* name : {"gpt2", "llama-gqa", "pythia", "gemma2"}) {
    INFO(name);
    const pp::Model& m = pptest::model(name);
    const pp::Batch batch = pptest::golden_batch(name);
    const int64_t B = batch.size, T = batch.seq, D = m.config().d_model, H = m.config().n_heads;
    const int n = m.config().n_layers;
    auto [answer, wrong] = some_tokens(m, B);
    const pp::LogitAttribution dla = pp::direct_logit_attribution(m, batch, answer, wrong);
    auto ref = pp::SafetensorsFile::open(pptest::golden(name) / "batch.safetensors");
    const pp::Tensor resid = ref.load("blocks." + std::to_string(n - 1) + ".hook_resid_post");
    const pp::NormWeights& w = m.final_norm_weights();
    const bool centred = w.b.defined();
    const pp::Tensor& W = m.unembedding();
    for (int L = 0; L < n; ++L) {
      const pp::Tensor result = ref.load("blocks." + std::to_string(L) + ".attn.hook_result");  // [B, T, H, D]
      // Gemma-2: a head's part is its result times the post-attention norm's weight, over the RMS
      // of the heads' sum (no output bias there), computed here from the reference's results.
      std::vector<double> post_inv(static_cast<size_t>(B), 1.0);
      if (m.config().post_norms)
        for (int64_t b = 0; b < B; ++b) {
          double ss = 0;
          for (int64_t i = 0; i < D; ++i) {
            double sum = 0;
            for (int64_t g = 0; g < H; ++g) sum += result.data()[((b * T + T - 1) * H + g) * D + i];
            ss += sum * sum;
          }
          post_inv[b] = 1.0 / std::sqrt(ss / D + m.config().norm_eps);
        }
      auto post_weight = [&](int64_t i) {
        return m.config().post_norms ? m.layer(L).attn_post_norm.w.data()[i] : 1.0f;
      };
      for (int64_t h = 0; h < H; ++h) {
        size_t k = 0;
        while (k < dla.components.size() && !(dla.components[k].kind == pp::ResidualPart::Head &&
                                              dla.components[k].layer == L && dla.components[k].head == h))
          ++k;
        REQUIRE(k < dla.components.size());
        CHECK(dla.components[k].name() ==
              std::string("a").append(std::to_string(L)).append(".h").append(std::to_string(h)));
        for (int64_t b = 0; b < B; ++b) {
          const float* x = resid.data() + (b * T + T - 1) * D;
          double mean = 0, ss = 0;
          if (centred)
            for (int64_t i = 0; i < D; ++i) mean += x[i] / static_cast<double>(D);
          for (int64_t i = 0; i < D; ++i) ss += (x[i] - mean) * (x[i] - mean);
          const double inv = 1.0 / std::sqrt(ss / D + m.config().norm_eps);
          const float* r = result.data() + ((b * T + T - 1) * H + h) * D;
          double rmean = 0, share = 0;
          if (centred)
            for (int64_t i = 0; i < D; ++i) rmean += r[i] / static_cast<double>(D);
          for (int64_t i = 0; i < D; ++i)
            share += (r[i] - rmean) * post_inv[b] * post_weight(i) * inv * w.w.data()[i] *
                     (W.data()[int64_t{answer[b]} * D + i] - W.data()[int64_t{wrong[b]} * D + i]);
          CHECK(dla.per_example.at({static_cast<int64_t>(k), b}) == Approx(share).margin(1e-4));
        }
      }
    }
    // The heads' grid holds the same numbers.
    const pp::SweepResult grid = dla.heads(m);
    CHECK(grid.values.size(1) == H + 1);
    for (size_t k = 0; k < dla.components.size(); ++k)
      if (dla.components[k].kind == pp::ResidualPart::Head)
        CHECK(grid.values.at({dla.components[k].layer, dla.components[k].head}) == dla.values.data()[k]);
  }
}

TEST_CASE("the lens and direct logit attribution refuse what they cannot read", "[lens]") {
  const pp::Model& m = pptest::model("gpt2");
  const pp::Batch batch = pptest::golden_batch("gpt2");
  auto [answer, wrong] = some_tokens(m, batch.size);
  CHECK_THROWS_AS(pp::direct_logit_attribution(m, batch, {answer[0]}, wrong), pp::InputError);
  CHECK_THROWS_WITH(pp::direct_logit_attribution(m, batch, answer, {-1, 2, 3}),
                    Catch::Contains("outside the vocabulary"));
  CHECK_THROWS_WITH(pp::direct_logit_attribution(m, batch, answer, wrong, batch.seq),
                    Catch::Contains("outside the input's"));
  CHECK_THROWS_WITH(pp::logit_lens(m, batch).logits(m, -batch.seq - 1), Catch::Contains("position"));
  CHECK_THROWS_AS(pp::final_norm(m, pp::Tensor::full({2, 3}, 1.0f)), pp::InputError);
  CHECK_THROWS_WITH(pp::logit_lens(m, batch).score(m, pp::Metric::normalized_logit_diff(answer, wrong)),
                    Catch::Contains("needs a corrupted run"));
  // A caller's own probes of the activations the lens and the attribution read are no second match.
  pp::RunOptions probed;
  probed.interventions = {pp::probe("blocks.0.hook_resid_pre"), pp::probe("blocks.1.hook_resid_post"),
                          pp::probe("blocks.0.attn.hook_result")};
  CHECK(pp::logit_lens(m, batch, probed).readings() == 3);
  CHECK(pp::direct_logit_attribution(m, batch, answer, wrong, -1, probed).total ==
        pp::direct_logit_attribution(m, batch, answer, wrong).total);
  // No wrong token: the answer's own logit.
  const pp::LogitAttribution one = pp::direct_logit_attribution(m, batch, answer, {});
  const pp::Result plain = pp::forward(m, batch);
  for (int64_t b = 0; b < batch.size; ++b)
    CHECK(one.total[b] == Approx(plain.logits.at({b, batch.seq - 1, answer[b]})).margin(2e-5));
}

TEST_CASE("generate: greedy tokens are the forward's arg-max, interventions included", "[generate]") {
  const pp::Model& m = pptest::model("llama-gqa");
  const pp::Batch batch = pptest::golden_batch("llama-gqa");
  pp::RunOptions ablated;
  ablated.interventions = {pp::zero("blocks.0.attn.hook_z", {{0, 1}, {}})};
  for (const pp::RunOptions& o : {pp::RunOptions{}, ablated}) {
    const pp::Generation g = pp::generate(m, batch, 4, o);
    REQUIRE(g.batch.seq == batch.seq + 4);
    const pp::Result r = pp::forward(m, g.batch, o);
    const int64_t V = m.config().vocab_size;
    for (int64_t b = 0; b < batch.size; ++b) {
      REQUIRE(g.tokens[b].size() == 4);
      for (int i = 0; i < 4; ++i) {
        const int64_t t = batch.seq - 1 + i;  // the position that predicted token i
        const float* row = r.logits.data() + (b * g.batch.seq + t) * V;
        CHECK(g.tokens[b][i] == std::max_element(row, row + V) - row);
        CHECK(g.batch.id(b, t + 1) == g.tokens[b][i]);
      }
      CHECK(g.batch.length(b) == batch.length(b) + 4);
    }
  }
  CHECK_THROWS_WITH(pp::generate(m, batch, m.config().n_ctx), Catch::Contains("context"));
  CHECK_THROWS_AS(pp::generate(m, batch, -1), pp::InputError);
  CHECK(pp::generate(m, batch, 0).batch.ids == batch.ids);
}

TEST_CASE("induction-gpt2 generates the repeat; without its previous-token head it does not", "[generate][zoo]") {
  const pp::Model m = pp::load_model(pptest::source_dir() / "models" / "zoo" / "induction-gpt2");
  const pp::RepeatedTokens r = pp::repeated_tokens(4, 20, 10000, 30000, 11, 50256);
  // Each row up to the first 5 tokens of the repeat: the model should write the next 10 of them.
  const int64_t cut = r.first_repeat() + 5;
  std::vector<std::vector<int32_t>> rows;
  for (int64_t b = 0; b < r.batch.size; ++b)
    rows.emplace_back(r.batch.ids.begin() + b * r.batch.seq, r.batch.ids.begin() + b * r.batch.seq + cut);
  const pp::Batch prompt = pp::Batch::from_rows(rows);
  auto copied = [&](const pp::Generation& g) {
    int right = 0;
    for (int64_t b = 0; b < prompt.size; ++b)
      for (int i = 0; i < 10; ++i) right += g.tokens[b][i] == r.batch.id(b, cut + i);
    return right;
  };
  const int plain = copied(pp::generate(m, prompt, 10));
  pp::RunOptions o;
  o.interventions = {pp::zero("blocks.0.attn.hook_z")};  // layer 0: the previous-token head's layer
  const int ablated = copied(pp::generate(m, prompt, 10, o));
  INFO("tokens copied of 40: " << plain << " plain, " << ablated << " with layer 0's attention zeroed");
  CHECK(plain >= 36);
  CHECK(ablated <= 10);
}
