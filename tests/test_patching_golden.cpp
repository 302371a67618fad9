// Activation patching, classic path patching and six nano-style predicate scenarios against the
// float64 PyTorch reference (tools/make_patching_golden.py).
#include <catch2/catch.hpp>
#include <cstdio>

#include "helpers.hpp"
#include "models/safetensors.hpp"
#include "pathpatch/rules.hpp"

namespace pp = pathpatch;

namespace {

constexpr float kTolerance = 1e-5f;

struct Golden {
  pp::SafetensorsFile file;
  pp::Batch clean, corrupt;
  explicit Golden(const std::string& model)
      : file(pp::SafetensorsFile::open(pptest::golden(model) / "patching.safetensors")),
        clean(pptest::batch_from(file.load("input_ids_clean"), file.load("attention_mask"))),
        corrupt(pptest::batch_from(file.load("input_ids_corrupt"), file.load("attention_mask"))) {}

  // Entry [L, h] of a [L, H, B, T, V] reference.
  pp::Tensor at(const std::string& name, int L, int h) const {
    pp::Tensor all = file.load(name);
    const int64_t H = all.size(1);
    return all.reshape({all.size(0) * H, all.size(2), all.size(3), all.size(4)}).slice0(L * H + h, L * H + h + 1)
        .reshape({all.size(2), all.size(3), all.size(4)});
  }
};

void report(const char* what, const std::string& model, float worst) {
  std::printf("patching golden %-10s %-28s worst |diff| %.2e\n", model.c_str(), what, worst);
}

const char* const kModels[] = {"gpt2", "llama-gqa", "llama3", "mistral", "qwen2", "gemma2", "pythia", "neox-sequential", "gpt-neo"};

pp::Split edges_at(const pp::Path& p, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (p.back() == n) return pp::Split::Edges;
  return pp::Split::None;
}

}  // namespace

TEST_CASE("activation patching of every head's z matches the reference", "[golden][patching]") {
  for (const char* name : kModels) {
    const pp::Model& m = pptest::model(name);
    Golden g(name);
    auto cache = std::make_shared<pp::Cache>();
    float worst = 0;
    for (int L = 0; L < m.config().n_layers; ++L)
      for (int h = 0; h < m.config().n_heads; ++h) {
        pp::RunOptions opt;
        opt.cache = cache;
        opt.interventions.push_back(pp::replace("blocks." + std::to_string(L) + ".attn.hook_z", 1, {{h}, {}}));
        pp::Result r = pp::run(m, {g.clean, g.corrupt}, [](const pp::Path&) { return 0; }, pptest::no_split, opt);
        float d = pptest::max_diff(r.logits, g.at("act_patch_z_logits", L, h));
        INFO(name << " layer " << L << " head " << h);
        CHECK(d <= kTolerance);
        worst = std::max(worst, d);
      }
    report("act patch z", name, worst);
  }
}

TEST_CASE("path patching senders to the final residual matches the reference", "[golden][patching]") {
  for (const char* name : kModels) {
    const pp::Model& m = pptest::model(name);
    Golden g(name);
    auto cache = std::make_shared<pp::Cache>();
    float worst_direct = 0, worst_mlp = 0;
    for (int L = 0; L < m.config().n_layers; ++L)
      for (int h = 0; h < m.config().n_heads; ++h) {
        std::string a = "a";  // appended, not "a" + ...: GCC 12 warns falsely (-Wrestrict) on that
        a += std::to_string(L);
        const std::string sender = a + " " + a + ".head " + a + ".head" + std::to_string(h);
        pp::RunOptions opt;
        opt.cache = cache;
        pp::Result direct = pp::run(m, {g.clean, g.corrupt}, pp::PathRules().add("ln_final " + sender, 1), opt);
        pp::Result mlp = pp::run(m, {g.clean, g.corrupt}, pp::PathRules().add("ln_final (f* f*.head)* " + sender, 1), opt);
        float dd = pptest::max_diff(direct.logits, g.at("path_patch_direct_logits", L, h));
        float dm = pptest::max_diff(mlp.logits, g.at("path_patch_mlp_logits", L, h));
        INFO(name << " sender " << L << "." << h);
        CHECK(dd <= kTolerance);
        CHECK(dm <= kTolerance);
        worst_direct = std::max(worst_direct, dd);
        worst_mlp = std::max(worst_mlp, dm);
      }
    report("path patch, MLPs frozen", name, worst_direct);
    report("path patch, MLPs on path", name, worst_mlp);
  }
}

TEST_CASE("six predicate scenarios match the reference", "[golden][patching]") {
  using P = const pp::Path&;
  struct Scenario {
    pp::BranchFn branch;
    pp::WhichFn which;
  };
  const std::vector<Scenario> scenarios = {
      {[](P p) { return edges_at(p, {"a1"}); }, [](P p) { return p.contains("a1") ? 1 : 0; }},
      {[](P p) { return edges_at(p, {"a1", "a1.head"}); }, [](P p) { return p.contains("a1.head2") ? 1 : 0; }},
      {[](P p) { return edges_at(p, {"a1", "a1.head", "a1.head1"}); },
       [](P p) { return p.contains("a1.head1.k") || p.contains("a1.head1.v") ? 1 : 0; }},
      {[](P p) { return p.back() == "f0.head" ? pp::Split::Positions : edges_at(p, {"f0"}); },
       [](P p) { return p.contains("f0.head.pos4") ? 1 : 0; }},
      {[](P p) { return p.back() == "a1.head" ? pp::Split::Positions : edges_at(p, {"a1"}); },
       [](P p) { return p.contains("a1.head.pos6") ? 0 : 1; }},
      {[](P p) { return p.back() == "f1" || (!p.contains("f1") && (p.back() == "a1" || p.back() == "a0")) ? pp::Split::Edges : pp::Split::None; },
       [](P p) { return p.contains("a0") && !p.contains("f1.head") ? 1 : 0; }},
  };
  for (const char* name : kModels) {
    const pp::Model& m = pptest::model(name);
    Golden g(name);
    float worst = 0;
    for (size_t i = 0; i < scenarios.size(); ++i) {
      pp::Result r = pp::run(m, {g.clean, g.corrupt}, scenarios[i].which, scenarios[i].branch);
      std::string key = "scenario" + std::to_string(i + 1);
      float dh = pptest::max_diff(r.hidden, g.file.load(key + "_hidden"));
      float dl = pptest::max_diff(r.logits, g.file.load(key + "_logits"));
      INFO(name << " " << key);
      CHECK(dh <= kTolerance);
      CHECK(dl <= kTolerance);
      worst = std::max({worst, dh, dl});
    }
    report("six scenarios", name, worst);
  }
}
