#pragma once
// The classic experiments on top of the engine:
//  - activation patching over sites (nnpatch's vocabulary), and
//  - path patching from senders to receivers (Wang et al. 2022, the IOI paper),
// each as one run or as a sweep with a metric. Sweeps share one memo cache, so each variant pays
// only for what it changes.
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pathpatch/metrics.hpp"
#include "pathpatch/rules.hpp"
#include "pathpatch/run.hpp"
#include "pathpatch/sharding.hpp"

namespace pathpatch {

// A sweep's numbers with their axes: values has one axis per entry of `axes`.
struct SweepResult {
  std::string title;                              // "z", "senders -> logits", ...
  std::string metric;                             // the metric's name
  std::vector<std::string> axes;                  // "layer", "position", "head"
  std::vector<std::vector<std::string>> labels;   // tick labels per axis
  Tensor values;                                  // the metric on the batch: the mean of per_example's rows
  Tensor per_example;                             // [..., B]: the metric on each batch row, per cell
  float clean = 0, corrupted = 0;                 // the metric on the unpatched runs (batch means)
  std::vector<float> clean_rows, corrupted_rows;  // ... on each batch row
  RunStats stats;                                 // the work the sweep's experiments did
  // What may not be what was meant: identical clean and corrupted inputs, a clean run that prefers
  // the wrong answer, a sweep without a single experiment.
  std::vector<std::string> warnings;
  std::vector<int64_t> filled;                    // flat indices of the values this process computed
                                                  // or resumed (with a Shard, a share; others NaN,
                                                  // in values and per_example alike)
};

// ---- Many experiments at once ----------------------------------------------------------------

// One experiment of a batch: which input each path reads, and interventions (no probes).
struct Experiment {
  PathRules rules;                          // default: every path reads input 0
  std::vector<Intervention> interventions;
};

// Called as a long computation advances: `done` of `total` experiments.
using Progress = std::function<void(size_t done, size_t total)>;

struct ExperimentOptions {
  std::shared_ptr<Cache> cache;  // share with the plain runs so their values serve as references
  int64_t first = 0, last = -1;  // positions [first, last] of the final hidden states to return
  size_t chunk = 64;             // experiments per unit, computed together (memory grows with it)
  Shard shard;                   // the units this process computes (sharding.hpp)
  std::function<bool(size_t unit)> skip;  // units done already (resumed), not computed
  // Each unit as it finishes: its index, its first experiment, and their hidden states.
  std::function<void(size_t unit, size_t first, const std::vector<Tensor>& hidden)> finished;
  Progress progress;             // experiments done of those this process computes
  RunStats* stats = nullptr;     // if given, receives the work done
};

// Runs many experiments on the same inputs. Their steps are planned together: what they share is
// computed once, positions they leave as in input 0's plain forward are taken from it, and steps of
// the same kind, layer and positions are stacked along the batch, so the GEMMs stay large. They
// are computed `chunk` at a time, each unit from the cache as the planning left it (sharding.hpp).
// Returns each experiment's ln_final output [B, last - first + 1, D]; undefined for the units
// skipped, left to other shards, or handed to `finished`.
std::vector<Tensor> run_experiments(const Model& model, const std::vector<Batch>& inputs,
                                    const std::vector<Experiment>& experiments, const ExperimentOptions& options = {});

// ---- Activation patching over sites ----------------------------------------------------------

// Where values are patched, in nnpatch's terms. Site names: resid_pre, resid_mid, resid_post,
// attn_out, mlp_out (per layer); z, q, k, v, pattern, result (per layer and head; for Llama k and
// v count key/value heads).
enum class SitePositions {
  All,             // every position at once (no position axis)
  Each,            // each position on its own (position axis)
  Last,            // the last position only (no position axis)
  LastK,           // each of the last k positions on its own (position axis)
  Custom,          // each of the given positions on its own (position axis)
  CustomConstant,  // the given positions together, in one run (no position axis)
};

struct Sites {
  std::vector<std::string> names{"resid_pre", "attn_out", "mlp_out"};
  std::vector<int> layers;                   // empty: every layer
  SitePositions positions = SitePositions::All;
  int k = 1;                                 // LastK
  std::vector<int> custom;                   // Custom, CustomConstant (negative: from the end)
};

// Which run is patched with which input's values. The defaults differ on purpose, each its
// literature's: activation patching denoises (TransformerLens, nnpatch: how much of the clean
// behaviour one clean value restores), path patching noises (Wang et al.: the clean run with the
// senders' corrupted effect on the receivers), and has no other direction.
enum class Direction {
  Denoise,  // run the corrupted input, patch in clean values (TransformerLens's default)
  Noise,    // run the clean input, patch in corrupted values
};

struct PatchingOptions {
  Direction direction = Direction::Denoise;
  std::shared_ptr<Cache> cache;  // reuse across calls; fresh if null
  Progress progress;
  Shard shard;                   // compute a share of the units (sharding.hpp, distributed.hpp)
  UnitLog* log = nullptr;        // finished units: read back, and recorded as they finish
};

// One tensor per site name, with axes (layer, [position], [head]).
std::map<std::string, SweepResult> activation_patching(const Model& model, const Batch& clean, const Batch& corrupted,
                                                       const Sites& sites, const Metric& metric,
                                                       const PatchingOptions& options = {});

// ---- Path patching ---------------------------------------------------------------------------

struct Sender {
  int layer = 0;
  int head = -1;  // -1: the layer's MLP
  // Only its output at these positions is sent (negative: from the end); empty: every position.
  // Between sender and receiver a path passes residual edges and MLPs only, which keep each row at
  // its position: the sender's row P reaches the receiver's row P (its input's, or the logits').
  std::vector<int> positions;

  Sender() = default;
  Sender(int l, int h, std::vector<int> at = {}) : layer(l), head(h), positions(std::move(at)) {}
};

struct Receiver {
  enum Kind { Logits, Q, K, V, Input } kind = Logits;  // Input: the head's q, k and v
  int layer = -1;
  int head = -1;
  // Only these rows of the head's input receive (negative: from the end; IOI's END is -1); empty:
  // every row. Positions are columns of the left-padded batch: a position that is padding in some
  // row is refused. The logits take no positions (the metric chooses the positions it reads).
  std::vector<int> positions;

  Receiver() = default;  // the logits
  Receiver(Kind k, int l, int h, std::vector<int> at = {}) : kind(k), layer(l), head(h), positions(std::move(at)) {}
  static Receiver logits() { return {}; }
  // A head's input named as the CLI and Python name it: "q", "k", "v" or "input"; InputError for
  // another word (the logits are not a head's input). kind_name also names Logits, "logits".
  static Kind kind_named(std::string_view name);
  static const char* kind_name(Kind k);
};

struct PathPatchingOptions {
  bool mlps_on_path = false;  // MLPs between sender and receiver are recomputed as part of the path
  std::shared_ptr<Cache> cache;
  Progress progress;
  size_t chunk = 64;          // experiments per unit of a sweep (smaller: finer shards, smaller GEMMs)
  Shard shard;                // compute a share of the units (sharding.hpp, distributed.hpp)
  UnitLog* log = nullptr;     // finished units: read back, and recorded as they finish
};

// The rules of a path-patching experiment: paths from the receivers' inputs (at their positions
// and the senders', aL.headH.q.posP or ln_final.posP) back to the senders (through residual edges,
// and MLPs if asked) read the corrupted input (1); all others clean (0). RuleError for a pair where
// the receiver does not come after the sender or shares no position with it; InputError for a
// position outside the `seq` positions of the inputs.
PathRules path_patching_rules(const Model& model, const std::vector<Sender>& senders,
                              const std::vector<Receiver>& receivers, bool mlps_on_path, int64_t seq = 0);

// One experiment: the clean run with the senders' corrupted effect on the receivers.
Result path_patch(const Model& model, const Batch& clean, const Batch& corrupted, const std::vector<Sender>& senders,
                  const std::vector<Receiver>& receivers, const PathPatchingOptions& options = {});

// Every head (and, if `include_mlps`, every MLP as head index H) as the sender to `receivers`, at
// `sender_positions` as Sender::positions: axes (layer, head).
SweepResult sweep_senders(const Model& model, const Batch& clean, const Batch& corrupted,
                          const std::vector<Receiver>& receivers, const Metric& metric,
                          const PathPatchingOptions& options = {}, bool include_mlps = false,
                          const std::vector<int>& sender_positions = {});

// Every head after the senders as the receiver (its `kind` input, at `positions` as
// Receiver::positions): axes (layer, head).
SweepResult sweep_receivers(const Model& model, const Batch& clean, const Batch& corrupted,
                            const std::vector<Sender>& senders, Receiver::Kind kind, const Metric& metric,
                            const PathPatchingOptions& options = {}, const std::vector<int>& positions = {});

}  // namespace pathpatch
