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

// GFLOP/s of the BLAS SGEMM on an m x k by k x n product, median of a few runs.
double sgemm_gflops(int64_t m, int64_t n, int64_t k);

// GPT-2 small: 12 layers, d_model 768, 12 heads, vocab 50257, 1024 positions; random weights.
pathpatch::ModelConfig gpt2_small_config();
pathpatch::Model gpt2_small(uint64_t seed = 1);

// Writes the model's weights (F32 safetensors) and config for the PyTorch script; returns the folder.
std::filesystem::path export_for_torch(const pathpatch::ModelConfig& cfg, uint64_t seed);

// Runs `/usr/bin/python3 bench/torch_reference.py <args>` with 2 threads; returns its stdout, or
// "" if python3-torch is not installed.
std::string run_torch(const std::string& args);
double parse_number(const std::string& text, const std::string& key);  // "key=value" lines; NaN if absent

std::string env_note();  // OPENBLAS_CORETYPE and thread counts, for the report header

}  // namespace bench
