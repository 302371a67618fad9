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
  const char* core = std::getenv("OPENBLAS_CORETYPE");
  return std::string("OPENBLAS_CORETYPE=") + (core ? core : "(unset)") + ", BLAS threads " +
         std::to_string(pp::kernels::threads());
}

}  // namespace bench
