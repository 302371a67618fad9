// Every named activation and the logits, against the float64 PyTorch reference written by
// tools/make_golden.py (an independent implementation of the Hugging Face forwards).
#include <catch2/catch.hpp>
#include <cstdio>

#include "helpers.hpp"
#include "models/safetensors.hpp"

namespace pp = pathpatch;

namespace {

// F32 storage: the reference runs in float64 on the same weights, so the only difference is our
// float32 arithmetic. F16 / BF16 storage: the reference also computes from the rounded weights
// (upcast exactly to float), so the same tolerance applies; what rounding costs against the F32
// checkpoint is a property of the weights, not of pathpatch, and is not what this test measures.
constexpr float kTolerance = 1e-5f;

void compare_case(const std::string& model_name, const std::string& case_name) {
  const pp::Model& m = pptest::model(model_name);
  auto ref = pp::SafetensorsFile::open(pptest::golden(model_name) / (case_name + ".safetensors"));
  pp::Batch batch = pptest::batch_from(ref.load("input_ids"), ref.load("attention_mask"));
  pp::RunOptions opt;
  for (const auto& a : m.graph().activations()) opt.interventions.push_back(pp::probe(a.name));
  pp::Result r = pp::forward(m, batch, opt);

  float worst = 0;
  std::string worst_name;
  int compared = 0;
  for (const auto& e : ref.entries()) {
    if (e.name == "input_ids" || e.name == "attention_mask") continue;
    INFO(model_name << "/" << case_name << ": " << e.name);
    pp::Tensor ours = e.name == "logits" ? r.logits : r.probe(e.name);
    pp::Tensor theirs = ref.load(e);
    REQUIRE(ours.shape() == theirs.shape());
    float d = pptest::max_diff(ours, theirs);
    CHECK(d <= kTolerance);
    if (d >= worst) {
      worst = d;
      worst_name = e.name;
    }
    ++compared;
  }
  // Both ways: every activation the graph names is in the reference.
  for (const auto& a : m.graph().activations()) {
    INFO("activation missing from the reference: " << a.name);
    CHECK(ref.find(a.name) != nullptr);
  }
  std::printf("golden %-16s %-7s %3d tensors, worst |diff| %.2e (%s)\n", model_name.c_str(), case_name.c_str(),
              compared, worst, worst_name.c_str());
}

}  // namespace

TEST_CASE("every activation matches the PyTorch reference", "[golden]") {
  for (const char* name : {"gpt2", "gpt2-prefixed", "gpt2-f16", "gpt2-bf16", "gpt2-attn-only", "gpt2-untied",
                           "llama-gqa", "llama-gqa-bf16", "llama-tied", "llama3", "llama-linear", "mistral", "qwen2",
                           "gemma2", "pythia", "neox-sequential", "gpt-neo"})
    for (const char* c : {"single", "batch"}) compare_case(name, c);
}

TEST_CASE("a left-padded row equals the same prompt run alone on its real positions", "[golden]") {
  for (const char* name : {"gpt2", "llama-gqa"}) {
    const pp::Model& m = pptest::model(name);
    pp::Batch padded = pp::Batch::from_rows({{5, 17, 2, 88, 41, 60, 7}, {23, 9, 77, 31}, {13, 8, 99, 4, 50, 66}});
    pp::Result all = pp::forward(m, padded);
    for (int64_t b = 0; b < padded.size; ++b) {
      std::vector<int32_t> row;
      for (int64_t t = 0; t < padded.seq; ++t)
        if (padded.real(b, t)) row.push_back(padded.id(b, t));
      pp::Result alone = pp::forward(m, pp::Batch::from_rows({row}));
      const int64_t pad = padded.seq - static_cast<int64_t>(row.size()), V = m.config().vocab_size;
      float worst = 0;
      for (int64_t t = 0; t < static_cast<int64_t>(row.size()); ++t)
        for (int64_t v = 0; v < V; ++v)
          worst = std::max(worst, std::fabs(all.logits.at({b, pad + t, v}) - alone.logits.at({0, t, v})));
      INFO(name << " row " << b);
      CHECK(worst <= kTolerance);
    }
  }
}
