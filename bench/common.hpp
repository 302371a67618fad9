#pragma once
// Shared pieces of the benchmarks: timing, the machine's SGEMM rate, a GPT-2-small-shaped random
// model, and running the PyTorch reference script when python3-torch is installed.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "pathpatch/pathpatch.hpp"

namespace bench {

// Median seconds of `fn` over repetitions filling about `budget_s` (at least `min_reps`).
double time_median(const std::function<void()>& fn, double budget_s = 3.0, int min_reps = 3);

// GFLOP/s of kernels::gemm on an m x k by k x n product: best of several runs after a warm-up.
double sgemm_gflops(int64_t m, int64_t n, int64_t k);

// The baseline "% of SGEMM" is measured against: the time kernels::gemm needs for the very products
// `work` makes (recorded with blas::GemmRecorder), each distinct product (shape, strides, threads)
// timed alone after a warm-up, best of 15 in three rounds, times how often it occurs. Work that is only
// products, done as fast as the BLAS does them alone, reaches 100%; nothing reaches more.
struct GemmFloor {
  double flops = 0, seconds = 0;
  size_t calls = 0, distinct = 0;
  double gflops() const { return flops / seconds / 1e9; }
};
GemmFloor gemm_floor(const std::function<void()>& work);

// A model shape to measure: a name and the config.json a random checkpoint is made from.
struct Shape {
  std::string name;
  std::string config_json;
  pathpatch::ModelConfig config() const;
  pathpatch::Model random(uint64_t seed = 1) const;  // random weights
};
// GPT-2 small: 12 layers, d_model 768, 12 heads, vocab 50257, 1024 positions.
Shape gpt2_small();
// Pythia-160M (GPT-NeoX): GPT-2 small's sizes, vocab 50304, rotary on a quarter of each head,
// attention and MLP in parallel, untied unembedding.
Shape pythia_160m();
// Gemma-2's architecture at GPT-2 small's depth and width (Gemma-2-2B itself is 10 GB in F32):
// 12 layers, d_model 768, 8 query heads and 4 key/value heads of 256, GeGLU MLP of 3072,
// soft-caps, sliding windows of 4096 in every other layer, vocab 50304.
Shape gemma2_small();

// The benchmarks' inputs, the same as bench/torch_reference.py's: B rows of T ids
// (b * 7919 + t * 104729) mod vocab; the corrupted copy changes position T/2; the metric is the
// logit difference of tokens 100 and 200 at the last position.
struct Inputs {
  pathpatch::Batch clean, corrupted;
  pathpatch::Metric metric;
};
Inputs inputs(const pathpatch::ModelConfig& config, int64_t B, int64_t T);

// Writes a random checkpoint of the shape (F32 safetensors) and its config for the PyTorch script;
// returns the folder.
std::filesystem::path export_for_torch(const Shape& shape, uint64_t seed);

// Runs `/usr/bin/python3 bench/torch_reference.py <args>` with 2 threads; returns its stdout, or
// "" if python3-torch is not installed.
std::string run_torch(const std::string& args);
double parse_number(const std::string& text, const std::string& key);  // "key=value" lines; NaN if absent

// The BLAS, the kernels it runs, OPENBLAS_CORETYPE, the GEMM path and threads, for the report header.
std::string env_note();

// `--gemm blas|eigen` among the arguments: run every product on that path (blas::set_gemm_path).
void apply_gemm_option(int argc, char** argv);

}  // namespace bench
