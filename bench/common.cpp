#include "common.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <memory>

#include "graph/blas.hpp"
#include "graph/kernels.hpp"
#include "models/checkpoint.hpp"

namespace bench {

namespace pp = pathpatch;

double time_median(const std::function<void()>& fn, double budget_s, int min_reps) {
  using clock = std::chrono::steady_clock;
  fn();  // warm-up
  std::vector<double> times;
  auto start = clock::now();
  while (static_cast<int>(times.size()) < min_reps ||
         std::chrono::duration<double>(clock::now() - start).count() < budget_s) {
    auto t0 = clock::now();
    fn();
    times.push_back(std::chrono::duration<double>(clock::now() - t0).count());
    if (times.size() >= 200) break;
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

namespace {

// Best seconds per call of one product, after a warm-up; small products are timed in runs of
// several calls so that the clock's resolution does not count.
double best_seconds(const pp::blas::GemmCall& g) {
  using clock = std::chrono::steady_clock;
  const int64_t a_rows = g.trans_a ? g.k : g.m, b_rows = g.trans_b ? g.n : g.k;
  // Tensors, not vectors: the engine's buffers (large ones on huge pages), not malloc's.
  auto filled = [](int64_t n, float v) {
    pp::Tensor t = pp::Tensor::uninitialized({std::max<int64_t>(1, n)});
    std::fill_n(t.data_mut(), t.numel(), v);
    return t;
  };
  pp::Tensor a = filled(a_rows * g.lda, 0.5f), b = filled(b_rows * g.ldb, 0.25f), c = filled(g.m * g.ldc, 0.0f);
  pp::kernels::SingleThreadedBlas one_thread(g.one_thread);
  auto call = [&] {
    pp::kernels::gemm(g.trans_a, g.trans_b, g.m, g.n, g.k, a.data(), g.lda, b.data(), g.ldb, 0.0f, c.data_mut(), g.ldc);
  };
  const int per_run = static_cast<int>(std::clamp(2e7 / std::max(1.0, g.flops()), 1.0, 1000.0));
  call();  // warm-up: pages touched, BLAS threads awake
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = clock::now();
    for (int i = 0; i < per_run; ++i) call();
    best = std::min(best, std::chrono::duration<double>(clock::now() - t0).count() / per_run);
  }
  return best;
}

}  // namespace

double sgemm_gflops(int64_t m, int64_t n, int64_t k) {
  return pp::kernels::gemm_flops(m, n, k) / best_seconds({false, false, m, n, k, k, n, n, false}) / 1e9;
}

GemmFloor gemm_floor(const std::function<void()>& work) {
  std::vector<pp::blas::GemmCall> calls;
  {
    pp::blas::GemmRecorder recorder;
    work();
    calls = recorder.calls();
  }
  std::vector<std::pair<pp::blas::GemmCall, size_t>> distinct;  // product, how often
  for (const auto& g : calls) {
    auto it = std::find_if(distinct.begin(), distinct.end(), [&](const auto& d) { return d.first == g; });
    if (it == distinct.end())
      distinct.emplace_back(g, 1);
    else
      ++it->second;
  }
  // Three rounds over the products, best of each across them: a product is timed at moments
  // seconds apart, so that a busy spell on the machine does not set its time.
  std::vector<double> best(distinct.size(), 1e30);
  for (int round = 0; round < 3; ++round)
    for (size_t i = 0; i < distinct.size(); ++i) best[i] = std::min(best[i], best_seconds(distinct[i].first));
  GemmFloor f;
  f.calls = calls.size();
  f.distinct = distinct.size();
  for (size_t i = 0; i < distinct.size(); ++i) {
    f.flops += distinct[i].first.flops() * static_cast<double>(distinct[i].second);
    f.seconds += best[i] * static_cast<double>(distinct[i].second);
  }
  return f;
}

pp::ModelConfig Shape::config() const { return pp::ModelConfig::parse(config_json, name + " (benchmark)"); }

pp::Model Shape::random(uint64_t seed) const {
  const pp::ModelConfig c = config();
  return pp::Model(c, pp::Checkpoint::random(c, seed));
}

Shape gpt2_small() {
  return {"gpt2-small",
          R"({"model_type":"gpt2","n_layer":12,"n_embd":768,"n_head":12,"n_positions":1024,"vocab_size":50257})"};
}

Shape pythia_160m() {
  return {"pythia-160m", R"({"model_type":"gpt_neox","num_hidden_layers":12,"hidden_size":768,"num_attention_heads":12,
      "intermediate_size":3072,"vocab_size":50304,"max_position_embeddings":2048,"rotary_pct":0.25,
      "rotary_emb_base":10000,"use_parallel_residual":true,"hidden_act":"gelu","tie_word_embeddings":false})"};
}

Shape gemma2_small() {
  return {"gemma2-small", R"({"model_type":"gemma2","num_hidden_layers":12,"hidden_size":768,"num_attention_heads":8,
      "num_key_value_heads":4,"head_dim":256,"intermediate_size":3072,"vocab_size":50304,
      "max_position_embeddings":8192,"query_pre_attn_scalar":256,"attn_logit_softcapping":50.0,
      "final_logit_softcapping":30.0,"sliding_window":4096,"rope_theta":10000.0,"rms_norm_eps":1e-6,
      "hidden_activation":"gelu_pytorch_tanh"})"};
}

std::filesystem::path export_for_torch(const Shape& shape, uint64_t seed) {
  auto dir = std::filesystem::temp_directory_path() / ("pathpatch-bench-" + shape.name + "-" + std::to_string(seed));
  if (!std::filesystem::exists(dir / "model.safetensors"))
    pp::Checkpoint::random(shape.config(), seed).save(dir, shape.config_json);
  return dir;
}

std::string run_torch(const std::string& args) {
  if (std::getenv("PP_BENCH_NO_TORCH")) return "";  // for profiling runs
  if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) return "";
  std::string cmd = "OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2 /usr/bin/python3 " + std::string(PP_SOURCE_DIR) +
                    "/bench/torch_reference.py " + args;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  if (!pipe) return "";
  std::string out;
  std::array<char, 4096> buf;
  while (size_t n = fread(buf.data(), 1, buf.size(), pipe.get())) out.append(buf.data(), n);
  return out;
}

double parse_number(const std::string& text, const std::string& key) {
  auto p = text.find(key + "=");
  if (p == std::string::npos) return NAN;
  return std::atof(text.c_str() + p + key.size() + 1);
}

std::string env_note() {
  const pp::blas::BlasInfo& b = pp::blas::info();
  std::string s = b.config.substr(0, b.config.find(' ', b.config.find(' ') + 1)) + ", kernel " + b.kernel +
                  " (OPENBLAS_CORETYPE=" + (b.coretype_env.empty() ? "unset" : b.coretype_env) + "), cpu " +
                  b.cpu.text() + ", GEMM " + pp::blas::to_string(pp::blas::gemm_path()) + ", " +
                  std::to_string(pp::kernels::threads()) + " threads";
  if (!b.advice().empty()) s += "\nnote: " + b.advice();
  return s;
}

void apply_gemm_option(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--gemm") {
      const std::string v = argv[i + 1];
      if (v != "blas" && v != "eigen") {
        std::fprintf(stderr, "--gemm: expected blas or eigen, got '%s'\n", v.c_str());
        std::exit(2);
      }
      pp::blas::set_gemm_path(v == "blas" ? pp::blas::GemmPath::Blas : pp::blas::GemmPath::Eigen);
    }
}

Inputs inputs(const pathpatch::ModelConfig& c, int64_t B, int64_t T) {
  std::vector<std::vector<int32_t>> rows(B);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) rows[b].push_back(static_cast<int32_t>((b * 7919 + t * 104729) % c.vocab_size));
  std::vector<std::vector<int32_t>> bad = rows;
  for (auto& r : bad) r[T / 2] = (r[T / 2] + 1) % c.vocab_size;
  return {pathpatch::Batch::from_rows(rows), pathpatch::Batch::from_rows(bad),
          pathpatch::Metric::logit_diff(std::vector<int32_t>(B, 100), std::vector<int32_t>(B, 200))};
}

}  // namespace bench
