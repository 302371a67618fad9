// TransformerLens's weight processing (Model::processed, models/processing.cpp): the model's
// function is kept on every family, the processed activations are what they should be, and they
// match a torch reference written from TransformerLens's processing (tools/make_processed_golden.py).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>

#include "helpers.hpp"
#include "models/safetensors.hpp"
#include "pathpatch/lens.hpp"

namespace pp = pathpatch;

namespace {

// log-softmax of each row of [..., V] logits, in double.
std::vector<double> log_probs(const pp::Tensor& logits) {
  const int64_t V = logits.size(-1), rows = logits.numel() / V;
  std::vector<double> out(static_cast<size_t>(logits.numel()));
  for (int64_t r = 0; r < rows; ++r) {
    const float* l = logits.data() + r * V;
    double mx = l[0], z = 0;
    for (int64_t v = 1; v < V; ++v) mx = std::max<double>(mx, l[v]);
    for (int64_t v = 0; v < V; ++v) z += std::exp(l[v] - mx);
    for (int64_t v = 0; v < V; ++v) out[r * V + v] = l[v] - mx - std::log(z);
  }
  return out;
}

const char* const kFamilies[] = {"gpt2",    "gpt2-attn-only", "gpt2-untied", "llama-gqa", "llama-tied",      "llama3",
                                 "mistral", "qwen2",          "gemma2",      "pythia",    "neox-sequential", "gpt-neo"};

}  // namespace

TEST_CASE("weight processing keeps every family's next-token distribution", "[processing]") {
  for (const char* name : kFamilies) {
    INFO(name);
    const pp::Model& m = pptest::model(name);
    const pp::Model p = m.processed();
    CHECK(p.id() != m.id());
    const pp::Batch batch = pptest::golden_batch(name);
    const pp::Result before = pp::forward(m, batch), after = pp::forward(p, batch);
    const std::vector<double> a = log_probs(before.logits), b = log_probs(after.logits);
    double worst = 0;
    for (int64_t row = 0; row < batch.size * batch.seq; ++row) {
      if (!batch.real(row / batch.seq, row % batch.seq)) continue;
      const int64_t V = m.config().vocab_size;
      for (int64_t v = 0; v < V; ++v) worst = std::max(worst, std::fabs(a[row * V + v] - b[row * V + v]));
    }
    CHECK(worst < 2e-5);
    std::printf("processed %-16s log-probabilities within %.1e of the unprocessed model's\n", name, worst);
    // Logit differences through the metric's own path (Model::logit_difference, with b_U).
    const int64_t D = m.config().d_model, T = batch.seq;
    for (int64_t r = 0; r < batch.size; ++r) {
      const double x = m.logit_difference(before.hidden.data() + (r * T + T - 1) * D, 3, 7);
      const double y = p.logit_difference(after.hidden.data() + (r * T + T - 1) * D, 3, 7);
      CHECK(y == Approx(x).margin(2e-4));
    }
  }
}

TEST_CASE("processed activations: the norms only normalise, the stream is centred, value biases are gone",
          "[processing]") {
  // GPT-2 (LayerNorm): every writer centred, so every residual stream has mean 0 over d_model.
  const pp::Model& gpt2 = pptest::model("gpt2");
  const pp::Model p = gpt2.processed();
  const pp::Batch batch = pptest::golden_batch("gpt2");
  pp::RunOptions o;
  for (const auto& a : p.graph().activations()) o.interventions.push_back(pp::probe(a.name));
  const pp::Result r = pp::forward(p, batch, o);
  const int64_t D = p.config().d_model;
  for (const std::string name : {"blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.1.hook_resid_post",
                                 "blocks.1.hook_attn_out", "blocks.0.hook_mlp_out", "hook_embed", "hook_pos_embed"}) {
    INFO(name);
    const pp::Tensor& x = r.probe(name);
    double worst = 0;
    for (int64_t row = 0; row < x.numel() / D; ++row) {
      double mean = 0;
      for (int64_t i = 0; i < D; ++i) mean += x.data()[row * D + i];
      worst = std::max(worst, std::fabs(mean / D));
    }
    CHECK(worst < 1e-5);
  }
  for (float w : std::vector<float>(p.final_norm_weights().w.data(), p.final_norm_weights().w.data() + D))
    REQUIRE(w == 1.0f);
  CHECK(p.unembed_bias_defined());  // LayerNorm's bias went into b_U
  // ln1's output is the plain normalisation of the stream: mean 0, variance 1 (up to eps).
  const pp::Tensor& n = r.probe("blocks.1.ln1.hook_normalized");
  for (int64_t row = 0; row < 3; ++row) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < D; ++i) mean += n.data()[row * D + i] / D;
    for (int64_t i = 0; i < D; ++i) var += std::pow(n.data()[row * D + i] - mean, 2) / D;
    CHECK(mean == Approx(0).margin(1e-5));
    CHECK(var == Approx(1).epsilon(1e-3));
  }

  // Qwen2 (RMSNorm, GQA, value biases): the values lose exactly their bias, and nothing is centred.
  const pp::Model& qwen = pptest::model("qwen2");
  const pp::Model q = qwen.processed();
  const pp::Batch qb = pptest::golden_batch("qwen2");
  pp::RunOptions v;
  v.interventions = {pp::probe("blocks.0.attn.hook_v"), pp::probe("blocks.0.hook_resid_pre")};
  const pp::Result before = pp::forward(qwen, qb, v), after = pp::forward(q, qb, v);
  pp::WeightProcessing only_values;
  only_values.fold_ln = only_values.center_writing_weights = only_values.center_unembed = false;
  const pp::Result bias_free = pp::forward(qwen.processed(only_values), qb, v);
  const pp::Tensor& v0 = before.probe("blocks.0.attn.hook_v");
  const pp::Tensor& v1 = bias_free.probe("blocks.0.attn.hook_v");
  const pp::Tensor& bv = qwen.layer(0).v.b;  // [KV * E]
  REQUIRE(bv.defined());
  for (int64_t i = 0; i < v0.numel(); ++i)
    REQUIRE(v1.data()[i] == Approx(v0.data()[i] - bv.data()[i % bv.numel()]).margin(1e-6));
  CHECK(pptest::max_diff(before.probe("blocks.0.hook_resid_pre"), after.probe("blocks.0.hook_resid_pre")) == 0.0f);
  CHECK_FALSE(q.unembed_bias_defined());
}

TEST_CASE("direct logit attribution of a processed model: its parts, b_U among them, sum to the same difference",
          "[processing][lens]") {
  const pp::Model& m = pptest::model("gpt2");
  const pp::Model p = m.processed();
  const pp::Batch batch = pptest::golden_batch("gpt2");
  const std::vector<int32_t> answer(static_cast<size_t>(batch.size), 3), wrong(static_cast<size_t>(batch.size), 7);
  const pp::LogitAttribution a = pp::direct_logit_attribution(m, batch, answer, wrong);
  const pp::LogitAttribution b = pp::direct_logit_attribution(p, batch, answer, wrong);
  CHECK(b.components.back().name() == "b_U");
  for (int64_t r = 0; r < batch.size; ++r) {
    CHECK(b.total[r] == Approx(a.total[r]).margin(2e-4));
    double sum = 0;
    for (size_t k = 0; k < b.components.size(); ++k) sum += b.per_example.at({static_cast<int64_t>(k), r});
    CHECK(sum == Approx(b.total[r]).margin(1e-4));
  }
}

TEST_CASE("processed activations match the torch reference written from TransformerLens's processing",
          "[processing][golden]") {
  for (const char* name : {"gpt2", "qwen2"}) {
    const pp::Model p = pptest::model(name).processed();
    auto ref = pp::SafetensorsFile::open(pptest::golden(name) / "processed.safetensors");
    const pp::Batch batch = pptest::batch_from(ref.load("input_ids"), ref.load("attention_mask"));
    pp::RunOptions o;
    for (const auto& a : p.graph().activations()) o.interventions.push_back(pp::probe(a.name));
    const pp::Result r = pp::forward(p, batch, o);
    float worst = 0;
    std::string worst_name;
    int compared = 0;
    for (const auto& e : ref.entries()) {
      if (e.name == "input_ids" || e.name == "attention_mask") continue;
      INFO(name << ": " << e.name);
      const pp::Tensor ours = e.name == "logits" ? r.logits : r.probe(e.name);
      const pp::Tensor theirs = ref.load(e);
      REQUIRE(ours.shape() == theirs.shape());
      const float d = pptest::max_diff(ours, theirs);
      CHECK(d <= 2e-5f);
      if (d >= worst) worst = d, worst_name = e.name;
      ++compared;
    }
    CHECK(compared == static_cast<int>(p.graph().activations().size()) + 1);
    std::printf("processed %-6s %3d tensors, worst |diff| %.2e (%s)\n", name, compared, worst, worst_name.c_str());
  }
}
