// `pathpatch demo`: the induction circuit of the default zoo model, found by path patching.
//
// On repeated random token sequences the model predicts the second copy; on the same sequences
// with the first copy replaced it cannot. Path patching from each head to the logits finds the
// induction head; path patching from each layer-0 head into the induction head's keys finds the
// previous-token head. Attention patterns confirm both. Pictures and a summary go to --out.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "pathpatch/cli/options.hpp"
#include "graph/files.hpp"
#include "pathpatch/analysis.hpp"
#include "viz/diagrams.hpp"
#include "viz/heatmap.hpp"

namespace pathpatch::cli {

namespace fs = std::filesystem;

namespace {

// The token range and BOS the model was trained on (its circuit.json, written by
// tools/train_induction.py); the GPT-2 defaults otherwise.
struct TaskInfo {
  int32_t lo = 10000, hi = 30000, bos = 50256;
};

TaskInfo read_task(const Model& m) {
  TaskInfo info;
  if (!files::exists(m.dir() / "circuit.json")) return info;
  try {
    nlohmann::json j = nlohmann::json::parse(files::read(m.dir() / "circuit.json", files::kMaxConfigBytes, "circuit"));
    if (j.contains("token_range")) {
      info.lo = j["token_range"][0].get<int32_t>();
      info.hi = j["token_range"][1].get<int32_t>();
    }
    if (j.contains("bos")) info.bos = j["bos"].get<int32_t>();
  } catch (const nlohmann::json::exception& e) {
    throw FormatError((m.dir() / "circuit.json").string() + ": " + e.what());
  }
  return info;
}

std::pair<int, int> best_head(const Tensor& scores, int layer) {
  const int64_t H = scores.size(1);
  int best = 0;
  for (int h = 1; h < H; ++h)
    if (scores.at({layer, h}) > scores.at({layer, best})) best = h;
  return {layer, best};
}

// The cell of a [layer, head] sweep that raises the metric most (largest increase of the loss).
std::pair<int, int> strongest(const SweepResult& s) {
  int64_t best = -1;
  for (int64_t i = 0; i < s.values.numel(); ++i)
    if (!std::isnan(s.values.data()[i]) && (best < 0 || s.values.data()[i] > s.values.data()[best])) best = i;
  const int64_t H = s.values.size(1);
  return {static_cast<int>(best / H), static_cast<int>(best % H)};
}

float mean(const std::vector<float>& v) {
  float s = 0;
  for (float x : v) s += x;
  return s / static_cast<float>(v.size());
}

}  // namespace

int run_demo(const Model& model, const std::string& out_dir, const std::shared_ptr<Cache>& cache) {
  auto start = std::chrono::steady_clock::now();
  const ModelConfig& c = model.config();
  prepare_output_folder(out_dir, "--out");
  std::ostringstream summary;
  auto say = [&](const std::string& line) {
    std::cout << line << "\n";
    summary << line << "\n";
  };
  say("pathpatch demo: the induction circuit of " + model.dir().string());
  say(std::to_string(c.n_layers) + " layers, " + std::to_string(c.n_heads) + " heads" +
      (c.attn_only ? ", attention only" : ""));

  // Repeated random sequences: [BOS] s s. The corrupted input changes the first copy.
  TaskInfo task = read_task(model);
  const int64_t half = 20;
  RepeatedTokens clean = repeated_tokens(8, half, task.lo, task.hi, 1, task.bos);
  Batch corrupted = unrepeated_tokens(clean, task.lo, task.hi, 2);
  const int64_t rep = clean.first_repeat(), T = clean.batch.seq;
  std::vector<float> first_loss = next_token_loss(model, clean.batch, 1, rep - 1);
  std::vector<float> second_loss = next_token_loss(model, clean.batch, rep, T - 1);
  char line[256];
  std::snprintf(line, sizeof line, "loss on the first copy %.2f, on the repeated copy %.2f (nats per token)",
                mean(first_loss), mean(second_loss));
  say(line);

  // Attention patterns: which heads look at the previous token, which do induction.
  Tensor prev = previous_token_scores(model, clean.batch);
  Tensor ind = induction_scores(model, clean);
  auto [pl, ph] = best_head(prev, 0);
  auto [il, ih] = best_head(ind, c.n_layers - 1);
  std::snprintf(line, sizeof line, "attention: head %d.%d attends to the previous token %.0f%% of the time; head %d.%d "
                "to the token after the previous occurrence %.0f%%", pl, ph, 100 * prev.at({pl, ph}), il, ih,
                100 * ind.at({il, ih}));
  say(line);

  // Path patching. The metric: cross-entropy of the repeated copy (positions rep..T-2 predict it).
  std::vector<int> scored;
  for (int64_t t = rep; t < T - 1; ++t) scored.push_back(static_cast<int>(t));
  Metric metric = Metric::cross_entropy(scored);
  PathPatchingOptions o;
  o.cache = cache;
  SweepResult to_logits = sweep_senders(model, clean.batch, corrupted, {Receiver::logits()}, metric, o);
  to_logits.title = "senders -> logits (loss on the repeated copy)";
  auto [sl, sh] = strongest(to_logits);
  std::snprintf(line, sizeof line, "path patching, each head -> logits: head %d.%d matters most (loss %.2f -> %.2f)",
                sl, sh, to_logits.clean, to_logits.values.at({sl, sh}));
  say(line);
  SweepResult to_keys = sweep_senders(model, clean.batch, corrupted, {Receiver{Receiver::K, sl, sh}}, metric, o);
  to_keys.title = "senders -> keys of head " + std::to_string(sl) + "." + std::to_string(sh);
  auto [kl, kh] = strongest(to_keys);
  std::snprintf(line, sizeof line, "path patching, each head -> keys of %d.%d: head %d.%d matters most (loss %.2f -> %.2f)",
                sl, sh, kl, kh, to_keys.clean, to_keys.values.at({kl, kh}));
  say(line);

  const bool found = sl == il && sh == ih && kl == pl && kh == ph;
  say(found ? "circuit: previous-token head " + std::to_string(kl) + "." + std::to_string(kh) + " -> keys of induction head " +
                  std::to_string(sl) + "." + std::to_string(sh) + " -> logits (patterns and path patching agree)"
            : "circuit: path patching and attention patterns point at different heads; see the pictures");

  // Pictures.
  viz::HeatmapOptions ho;
  ho.baseline = viz::Baseline::Clean;  // the increase of the loss each patch causes
  viz::write_sweep(to_logits, fs::path(out_dir) / "senders-to-logits.svg", ho);
  viz::write_sweep(to_keys, fs::path(out_dir) / "senders-to-keys.svg", ho);
  viz::write_sweep(to_logits, fs::path(out_dir) / "senders-to-logits.csv");
  viz::write_sweep(to_logits, fs::path(out_dir) / "senders-to-logits.json");
  viz::write_sweep(to_keys, fs::path(out_dir) / "senders-to-keys.json");
  // The circuit: every head whose effect reaches half the smaller of the two sweeps' largest, in
  // both sweeps, so that the legend's threshold is what the picture applies (heads as strong as
  // the strongest are drawn too).
  const float threshold = 0.5f * std::min(to_logits.values.at({sl, sh}) - to_logits.clean,
                                          to_keys.values.at({kl, kh}) - to_keys.clean);
  std::vector<viz::WeightedEdge> edges;
  for (const auto& [sweep, receiver] : {std::pair{&to_keys, PathName::head_input(sl, sh, Role::K).str()},
                                        std::pair{&to_logits, std::string("logits")}})
    for (int l = 0; l < c.n_layers; ++l)
      for (int h = 0; h < c.n_heads; ++h) {
        const float effect = sweep->values.at({l, h}) - sweep->clean;
        if (!std::isnan(effect) && std::fabs(effect) >= threshold)
          edges.push_back({PathName::head_of(l, h).str(), receiver, effect});
      }
  viz::CircuitOptions co;
  co.metric = "increase of the loss on the repeated copy";
  viz::circuit_graph(edges, threshold, co).render_file((fs::path(out_dir) / "circuit.svg").string());
  // The computation of the second experiment, as the engine split it.
  Result r = path_patch(model, clean.batch, corrupted, {{kl, kh}}, {{Receiver::K, sl, sh}});
  viz::render_provenance(r, model, (fs::path(out_dir) / "paths.svg").string(),
                         viz::DiagramOptions::for_inputs({clean.batch, corrupted}, {"repeated", "not repeated"}));

  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::snprintf(line, sizeof line, "wrote %s/{senders-to-logits.svg,senders-to-keys.svg,senders-to-logits.csv,"
                "senders-to-{logits,keys}.json,circuit.svg,paths.svg,summary.txt} in %.1f s", out_dir.c_str(), seconds);
  say(line);
  files::write(fs::path(out_dir) / "summary.txt", summary.str());
  return found ? 0 : kBadInput;
}

}  // namespace pathpatch::cli
