#include "common.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <memory>

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

double sgemm_gflops(int64_t m, int64_t n, int64_t k) {
  std::vector<float> a(m * k, 0.5f), b(k * n, 0.25f), c(m * n);
  double s = time_median([&] { pp::kernels::gemm(false, false, m, n, k, a.data(), k, b.data(), n, 0.0f, c.data(), n); },
                         1.0, 5);
  return pp::kernels::gemm_flops(m, n, k) / s / 1e9;
}

pp::ModelConfig gpt2_small_config() {
  return pp::ModelConfig::parse(
      R"({"model_type":"gpt2","n_layer":12,"n_embd":768,"n_head":12,"n_positions":1024,"vocab_size":50257})",
      "gpt2-small (benchmark)");
}

pp::Model gpt2_small(uint64_t seed) {
  pp::ModelConfig c = gpt2_small_config();
  return pp::Model(c, pp::Checkpoint::random(c, seed));
}

std::filesystem::path export_for_torch(const pp::ModelConfig& cfg, uint64_t seed) {
  auto dir = std::filesystem::temp_directory_path() / ("pathpatch-bench-gpt2-small-" + std::to_string(seed));
  if (!std::filesystem::exists(dir / "model.safetensors"))
    pp::Checkpoint::random(cfg, seed).save(
        dir, R"({"model_type":"gpt2","n_layer":12,"n_embd":768,"n_head":12,"n_positions":1024,"vocab_size":50257})");
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
  const char* core = std::getenv("OPENBLAS_CORETYPE");
  return std::string("OPENBLAS_CORETYPE=") + (core ? core : "(unset)") + ", BLAS threads " +
         std::to_string(pp::kernels::threads());
}

}  // namespace bench
