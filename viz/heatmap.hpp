#pragma once
// Sweep results as pictures and tables: an SVG heatmap written by hand, CSV and JSON.
//
//   namespace viz = pathpatch::viz;
//   pp::SweepResult s = pp::sweep_senders(model, clean, corrupt, {pp::Receiver::logits()}, metric);
//   std::string svg = viz::heatmap_svg(s);                    // layer x head, blue-white-red
//   viz::write_sweep(s, "senders.svg");                       // or .png, .csv, .json
//   viz::HeatmapOptions change;
//   change.baseline = viz::Baseline::Clean;                    // colour value - clean: the effect
//   viz::write_sweep(s, "effects.png", change);
//
//   // A 3-D site sweep (layer, position, head): sum over heads, tokens on the position axis.
//   viz::HeatmapOptions o;
//   o.reduce_axis = "head";
//   o.reduce = viz::Reduce::Sum;
//   o.position_labels = {"When", " Mary", " and", ...};
//   viz::write_sweep(z_sweep, "z.svg", o);
//
// Rows are the first remaining axis (layers, top to bottom), columns the second. The colour scale is
// symmetric around zero (blue negative, white zero, red positive); NaN cells (no experiment there)
// are hatched grey.
#include <filesystem>
#include <string>
#include <vector>

namespace pathpatch {
struct SweepResult;
class Tensor;
}

namespace pathpatch::viz {

// What an effect is measured from. A sweep holds the metric of each patched run: path patching and
// noising (the clean run, corrupted values patched in) show their effect as value - clean,
// denoising activation patching as value - corrupted.
enum class Baseline { None, Clean, Corrupted };

// The sweep's values minus the baseline, its metric renamed "change in <metric> from clean"; the
// sweep itself for Baseline::None. Per-row values become each row's change from its own baseline.
SweepResult relative_to(const SweepResult& s, Baseline b);

enum class Reduce { Sum, Mean, MaxAbs };  // MaxAbs keeps the value of largest magnitude (with its sign)

struct HeatmapOptions {
  Baseline baseline = Baseline::None;  // subtracted from every value first
  // Results with more than two axes: the axis to remove ("" picks "head", else the last axis),
  // by `reduce`, or by taking index `fixed_index` of it when that is >= 0.
  std::string reduce_axis;
  Reduce reduce = Reduce::Sum;
  int fixed_index = -1;
  std::vector<std::string> position_labels;  // token strings: tick labels of a "position" axis
  float limit = 0;         // the colour scale spans [-limit, limit]; 0: the largest |value|
  bool annotate = true;    // print each cell's value when the cells are large enough
  int cell = 0;            // cell size in pixels; 0: chosen from the number of columns
  std::string title;       // default: the sweep's title and metric
};

// A sweep with one axis fewer (see HeatmapOptions), or the sweep itself when it has at most two.
// NaN values are skipped when reducing; a slice of only NaN stays NaN.
SweepResult reduce_sweep(const SweepResult& s, const HeatmapOptions& o);

std::string heatmap_svg(const SweepResult& s, const HeatmapOptions& o = {});

// One row per cell: a column per axis (its tick label), then "value" (the batch mean), then for a
// batch of several rows "row0", "row1", ... (each row's value); a header line first. NaN as "nan".
std::string sweep_csv(const SweepResult& s);
// {"title", "metric", "clean", "corrupted", "axes", "labels", "shape", "values" (nested, null for
// NaN), and with per-row values "per_example" (nested, one more axis), "clean_rows", "corrupted_rows"}
std::string sweep_json(const SweepResult& s);

// Chooses by extension: .svg (heatmap), .png / .pdf (the heatmap rasterised by Graphviz), .csv,
// .json. RenderError for another extension, IoError if the file cannot be written.
void write_sweep(const SweepResult& s, const std::filesystem::path& path, const HeatmapOptions& o = {});

// An attention pattern as a picture: `pattern` is one head's [T, T] (query positions x key
// positions, rows summing to 1), `tokens` the T tokens; returned as a sweep with axes ("query",
// "key"), each labelled "token (position)", so heatmap_svg draws it (white 0 to red 1 with
// HeatmapOptions::limit = 1) and sweep_csv / sweep_json write it.
SweepResult attention_sweep(const Tensor& pattern, const std::vector<std::string>& tokens, const std::string& title);

// The diverging colour map: t in [-1, 1] (clamped) -> "#rrggbb", blue at -1, white at 0, red at 1.
std::string diverging_colour(float t);

}  // namespace pathpatch::viz
