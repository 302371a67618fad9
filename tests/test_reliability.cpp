// What the engine does at the edges: a small memory budget, extreme numbers, bad weights, padding
// everywhere, predicates that change their minds.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include "helpers.hpp"
#include "models/checkpoint.hpp"
#include "pathpatch/patching.hpp"

namespace pp = pathpatch;

namespace {

pp::Batch clean() { return pp::Batch::from_rows({{3, 14, 15, 92, 65, 35, 89}, {7, 7, 1, 2, 3, 4, 5}}); }
pp::Batch corrupt() { return pp::Batch::from_rows({{3, 14, 15, 92, 11, 35, 89}, {7, 7, 1, 2, 9, 4, 5}}); }

}  // namespace

TEST_CASE("a small cache budget is never exceeded, and a sweep still gives the same numbers", "[reliability][memory]") {
  const pp::Model& m = pptest::model("gpt2");
  pp::Sites sites;
  sites.names = {"z", "resid_pre"};
  sites.positions = pp::SitePositions::Each;
  pp::Metric metric = pp::Metric::logit_diff({40, 41}, {50, 51});
  auto roomy = std::make_shared<pp::Cache>();
  auto tight = std::make_shared<pp::Cache>(64 << 10);  // 64 KiB: a handful of activations
  pp::PatchingOptions a, b;
  a.cache = roomy;
  b.cache = tight;
  auto expected = pp::activation_patching(m, clean(), corrupt(), sites, metric, a);
  auto got = pp::activation_patching(m, clean(), corrupt(), sites, metric, b);
  CHECK(tight->counters().peak_bytes <= tight->budget());
  CHECK(tight->counters().evictions > 0);
  CHECK(roomy->counters().peak_bytes > tight->budget());
  for (const char* site : {"z", "resid_pre"}) CHECK(pp::max_abs_diff(got[site].values, expected[site].values) < 1e-5f);
}

TEST_CASE("metrics stay finite on very large logits", "[reliability][numerics]") {
  const pp::Model& m = pptest::model("gpt2");
  pp::Tensor h = pp::forward(m, clean()).hidden;
  pp::Tensor huge = h.clone();
  for (int64_t i = 0; i < huge.numel(); ++i) huge.data_mut()[i] *= 1e4f;  // logits around 1e4
  for (pp::Metric metric : {pp::Metric::prob({40, 41}), pp::Metric::log_prob({40, 41}), pp::Metric::kl(),
                            pp::Metric::cross_entropy()}) {
    pp::Scorer s(m, metric, clean(), h, h);
    INFO(metric.name());
    CHECK(std::isfinite(s.mean(huge)));
  }
}

TEST_CASE("NaN or Inf in weights is refused at load, naming the tensor", "[reliability][numerics][refuse]") {
  pp::ModelConfig c = pp::ModelConfig::parse(
      R"({"model_type":"gpt2","n_layer":1,"n_embd":8,"n_head":2,"n_positions":4,"vocab_size":5})", "tiny");
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    std::map<std::string, pp::Tensor> t;
    for (const pp::TensorSpec& spec : pp::checkpoint_layout(c)) t[spec.name] = pp::Tensor::full(spec.shape, 0.5f);
    t["h.0.mlp.c_fc.weight"].data_mut()[3] = bad;
    CHECK_THROWS_WITH(pp::Model(c, pp::Checkpoint::from_tensors(t)),
                      Catch::Contains("h.0.mlp.c_fc.weight") && Catch::Contains(std::isnan(bad) ? "NaN" : "Inf") &&
                          Catch::Contains("flat index 3"));
  }
}

TEST_CASE("F16 extremes load exactly; an F16 infinity is refused", "[reliability][numerics][refuse]") {
  // A one-tensor file written by hand: F16 [4] = {65504, -65504, smallest subnormal, inf}.
  auto write = [](const std::string& path, std::vector<uint16_t> values) {
    std::string header = R"({"w":{"dtype":"F16","shape":[)" + std::to_string(values.size()) +
                         R"(],"data_offsets":[0,)" + std::to_string(2 * values.size()) + "]}}";
    std::ofstream out(path, std::ios::binary);
    uint64_t n = header.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << header;
    out.write(reinterpret_cast<const char*>(values.data()), 2 * values.size());
  };
  std::string dir = (std::filesystem::temp_directory_path() / "pathpatch_f16").string();
  std::filesystem::create_directories(dir);
  write(dir + "/model.safetensors", {0x7bff, 0xfbff, 0x0001});
  pp::Checkpoint ck = pp::Checkpoint::open(dir);
  pp::Tensor w = ck.load("w", {3});
  CHECK(w.at({0}) == 65504.0f);
  CHECK(w.at({1}) == -65504.0f);
  CHECK(w.at({2}) == std::ldexp(1.0f, -24));
  write(dir + "/model.safetensors", {0x3c00, 0x7c00});
  CHECK_THROWS_WITH(pp::Checkpoint::open(dir).load("w", {2}), Catch::Contains("'w' holds Inf"));
}

TEST_CASE("a row that is all padding is refused; padding queries attend to nothing", "[reliability][numerics][refuse]") {
  const pp::Model& m = pptest::model("gpt2");
  pp::Batch b = clean();
  for (int64_t t = 0; t < b.seq; ++t) b.mask[b.seq + t] = 0;
  CHECK_THROWS_WITH(pp::forward(m, b), Catch::Contains("row 1 has no real tokens"));
  pp::Batch right = clean();
  right.mask[right.seq - 1] = 0;  // padding on the right
  CHECK_THROWS_WITH(pp::forward(m, right), Catch::Contains("pad on the left"));
  // A left-padded row: its padding queries have an all-zero pattern and z, never NaN.
  pp::Batch padded = pp::Batch::from_rows({{1, 2, 3, 4}, {5, 6}});
  pp::RunOptions o;
  o.interventions = {pp::probe("pattern0"), pp::probe("z0")};
  pp::Result r = pp::forward(m, padded, o);
  for (int64_t h = 0; h < 4; ++h)
    for (int64_t k = 0; k < 4; ++k) CHECK(r.probe("pattern0").at({1, h, 0, k}) == 0.0f);
  for (int64_t i = 0; i < r.hidden.numel(); ++i) CHECK(std::isfinite(r.hidden.data()[i]));
}

TEST_CASE("predicates are asked once per path; answers that change between runs make different experiments",
          "[reliability][engine]") {
  const pp::Model& m = pptest::model("gpt2");
  std::map<std::string, int> asked;
  int calls = 0;
  auto which = [&](const pp::Path& p) {
    ++asked[p.str()];
    return calls++ % 3 == 1 ? 1 : 0;  // changes its mind from call to call
  };
  auto branch = [](const pp::Path& p) { return p.back() == "a1" || p.back() == "f0" ? pp::Split::Edges : pp::Split::None; };
  pp::Result first = pp::run(m, {clean(), corrupt()}, which, branch);
  for (const auto& [path, n] : asked) CHECK(n == 1);
  pp::Result second = pp::run(m, {clean(), corrupt()}, which, branch);
  CHECK(asked.size() == 4);  // four distinct paths reach the embeddings
  // The second run saw the other answers: a different experiment, computed as such.
  CHECK_FALSE(pp::bit_equal(first.hidden, second.hidden));
}
