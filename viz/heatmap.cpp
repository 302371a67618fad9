// Sweep heatmaps (SVG by hand), CSV and JSON (see heatmap.hpp).
#include "viz/heatmap.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "graph/error.hpp"
#include "pathpatch/patching.hpp"
#include "viz/graphviz.hpp"

namespace pathpatch::viz {

// The heatmap's SVG and its size in pixels (heatmap_svg, and the rasterised forms, which need the size).
std::string heatmap_document(const SweepResult& sweep, const HeatmapOptions& o, double* width, double* height);

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();

std::string joined(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (const auto& x : v) {
    if (!s.empty()) s += sep;
    s += x;
  }
  return s;
}

// Row-major strides of a shape.
std::vector<int64_t> strides(const Shape& shape) {
  std::vector<int64_t> st(shape.size(), 1);
  for (int a = static_cast<int>(shape.size()) - 2; a >= 0; --a) st[a] = st[a + 1] * shape[a + 1];
  return st;
}

float reduce_values(const std::vector<float>& xs, Reduce how) {
  float sum = 0, best = kNaN;
  int n = 0;
  for (float x : xs) {
    if (std::isnan(x)) continue;
    sum += x;
    ++n;
    if (std::isnan(best) || std::fabs(x) > std::fabs(best)) best = x;
  }
  if (n == 0) return kNaN;
  if (how == Reduce::Mean) return sum / n;
  if (how == Reduce::MaxAbs) return best;
  return sum;
}

const char* reduce_name(Reduce r) { return r == Reduce::Sum ? "sum" : r == Reduce::Mean ? "mean" : "max |.|"; }

std::string xml(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string num(double v, const char* f = "%.4g") {
  char buf[32];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// A cell's value in as few characters as its size allows.
std::string cell_text(float v) {
  const float a = std::fabs(v);
  std::string s = num(v, a >= 100 ? "%.0f" : a >= 10 ? "%.1f" : "%.2f");
  if (s[0] == '-' && s.find_first_of("123456789") == std::string::npos) s.erase(0, 1);  // no "-0.00"
  return s;
}

// The shortest decimal that reads back as the same float, as a double ("0.1", not 0.10000000149).
double tidy(float v) {
  char buf[32];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  *res.ptr = '\0';
  return std::strtod(buf, nullptr);
}

// Tick labels of one axis; token strings on a position axis when the caller gave them.
std::vector<std::string> ticks(const SweepResult& s, size_t axis, const HeatmapOptions& o) {
  if (axis >= static_cast<size_t>(s.values.dim())) return {std::string()};  // a 1-D sweep: one column
  std::vector<std::string> t = axis < s.labels.size() ? s.labels[axis] : std::vector<std::string>{};
  const int64_t n = s.values.size(static_cast<int>(axis));
  t.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    if (t[i].empty()) t[i] = std::to_string(i);
  if (axis < s.axes.size() && s.axes[axis] == "position" && !o.position_labels.empty())
    for (auto& label : t) {
      char* end = nullptr;
      long p = std::strtol(label.c_str(), &end, 10);
      if (end != label.c_str() && *end == '\0' && p >= 0 && p < static_cast<long>(o.position_labels.size()))
        label = o.position_labels[p] + " (" + label + ")";
    }
  return t;
}

double text_width(const std::string& s, double font) { return 0.6 * font * static_cast<double>(s.size()); }

// The colour bar's five tick labels, bottom to top: -limit, -limit/2, 0, limit/2, limit.
std::vector<std::string> bar_labels(float limit) {
  std::vector<std::string> out;
  for (int i = 0; i <= 4; ++i) out.push_back(num(limit * static_cast<float>(2 * (i / 4.0) - 1), "%.3g"));
  return out;
}

struct Layout {
  int64_t rows = 0, cols = 0;
  double cell = 0, cell_h = 0, left = 0, top = 64, grid_w = 0, grid_h = 0, bar_x = 0, bar_h = 0, width = 0, height = 0;
  double col_tick_h = 0;
  int64_t tick_every = 1;  // a label on every k-th column: cells narrower than a line of text
  bool rotate = false;
};

// Every text's box must stay on the canvas (tests/test_viz.cpp checks it with its own measure).
Layout layout(const std::vector<std::string>& row_ticks, const std::vector<std::string>& col_ticks,
              const std::string& title, const std::string& bar_label, const HeatmapOptions& o) {
  Layout L;
  L.rows = static_cast<int64_t>(row_ticks.size());
  L.cols = static_cast<int64_t>(col_ticks.size());
  // Up to 40 columns fill 560 px; beyond, cells shrink to 4 px (512 positions: 2 kpx, not 7) and
  // only every k-th column is labelled.
  L.cell = o.cell > 0 ? o.cell : std::clamp(560.0 / static_cast<double>(L.cols), L.cols > 40 ? 4.0 : 14.0, 40.0);
  L.tick_every = static_cast<int64_t>(std::ceil(14.0 / L.cell));
  L.cell_h = std::max(L.cell, 14.0);  // narrow columns, rows still as tall as their tick labels
  double row_w = 0, col_w = 0;
  for (const auto& t : row_ticks) row_w = std::max(row_w, text_width(t, 11));
  for (const auto& t : col_ticks) col_w = std::max(col_w, text_width(t, 11));
  L.rotate = col_w > L.cell * static_cast<double>(L.tick_every) - 2;
  L.col_tick_h = L.rotate ? col_w * 0.72 + 12 : 18;
  // A rotated label runs down-left from its column: the first one must not leave the canvas.
  L.left = std::max(34 + row_w + 6, L.rotate ? col_w * 0.75 - L.cell / 2 + 6 : 0.0);
  L.grid_w = L.cell * L.cols;
  L.grid_h = L.cell_h * L.rows;
  L.bar_h = std::max(L.grid_h, 120.0);
  L.bar_x = L.left + L.grid_w + 28;
  L.width = std::max({L.bar_x + 16 + 56, L.bar_x + 21 + text_width(bar_label, 10) * 1.1 + 8,
                      text_width(title, 15) * 1.15 + 24});  // bold
  L.height = L.top + std::max(L.grid_h + L.col_tick_h + 26, L.bar_h + 30) + 12;
  return L;
}

void svg_defs(std::ostringstream& out) {
  out << "<defs>\n"
      << "<pattern id=\"nan\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">"
      << "<rect width=\"6\" height=\"6\" fill=\"#e6e6e6\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#a6a6a6\" "
         "stroke-width=\"2\"/></pattern>\n"
      << "<linearGradient id=\"bar\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">";
  for (int i = 0; i <= 12; ++i) {
    float t = -1.0f + 2.0f * static_cast<float>(i) / 12.0f;
    out << "<stop offset=\"" << num(i / 12.0) << "\" stop-color=\"" << diverging_colour(t) << "\"/>";
  }
  out << "</linearGradient>\n</defs>\n";
}

void svg_cells(std::ostringstream& out, const SweepResult& s, const Layout& L, float limit,
               const std::vector<std::string>& row_ticks, const std::vector<std::string>& col_ticks,
               const HeatmapOptions& o) {
  const std::string row_axis = s.axes.empty() ? "row" : s.axes[0];
  const std::string col_axis = s.axes.size() < 2 ? "" : s.axes[1];
  const bool annotate = o.annotate && L.cell >= 26;
  const double font = std::min(10.0, L.cell / 3.4);
  for (int64_t r = 0; r < L.rows; ++r)
    for (int64_t c = 0; c < L.cols; ++c) {
      const float v = s.values.data()[r * L.cols + c];
      const double x = L.left + c * L.cell, y = L.top + r * L.cell_h;
      const float t = v / limit;
      std::string where = row_axis + " " + row_ticks[r] + (col_axis.empty() ? "" : ", " + col_axis + " " + col_ticks[c]);
      out << "<rect class=\"cell" << (std::isnan(v) ? " nan" : "") << "\" x=\"" << num(x) << "\" y=\"" << num(y)
          << "\" width=\"" << num(L.cell) << "\" height=\"" << num(L.cell_h) << "\" fill=\""
          << (std::isnan(v) ? "url(#nan)" : diverging_colour(t)) << "\" stroke=\"white\" stroke-width=\"0.5\">"
          << "<title>" << xml(where) << ": " << (std::isnan(v) ? "no value" : num(v)) << "</title></rect>\n";
      if (annotate && !std::isnan(v))
        out << "<text x=\"" << num(x + L.cell / 2) << "\" y=\"" << num(y + L.cell_h / 2) << "\" dy=\"0.35em\" "
            << "text-anchor=\"middle\" font-size=\"" << num(font) << "\" fill=\""
            << (std::fabs(t) > 0.6f ? "white" : "#222222") << "\">" << cell_text(v) << "</text>\n";
    }
}

void svg_axes(std::ostringstream& out, const SweepResult& s, const Layout& L, const std::vector<std::string>& row_ticks,
              const std::vector<std::string>& col_ticks) {
  for (int64_t r = 0; r < L.rows; ++r)
    out << "<text x=\"" << num(L.left - 6) << "\" y=\"" << num(L.top + (r + 0.5) * L.cell_h)
        << "\" dy=\"0.35em\" text-anchor=\"end\" font-size=\"11\" xml:space=\"preserve\">" << xml(row_ticks[r]) << "</text>\n";
  const double y0 = L.top + L.grid_h + 6;
  for (int64_t c = 0; c < L.cols; c += L.tick_every) {
    const double x = L.left + (c + 0.5) * L.cell;
    if (L.rotate)
      out << "<text transform=\"translate(" << num(x + 3) << "," << num(y0) << ") rotate(-45)\" text-anchor=\"end\" "
          << "dy=\"0.7em\" font-size=\"11\" xml:space=\"preserve\">" << xml(col_ticks[c]) << "</text>\n";
    else
      out << "<text x=\"" << num(x) << "\" y=\"" << num(y0) << "\" dy=\"0.8em\" text-anchor=\"middle\" font-size=\"11\">"
          << xml(col_ticks[c]) << "</text>\n";
  }
  if (s.axes.size() >= 2)
    out << "<text x=\"" << num(L.left + L.grid_w / 2) << "\" y=\"" << num(y0 + L.col_tick_h + 8)
        << "\" text-anchor=\"middle\" font-size=\"12\" font-weight=\"bold\">" << xml(s.axes[1]) << "</text>\n";
  if (!s.axes.empty())
    out << "<text transform=\"translate(16," << num(L.top + L.grid_h / 2) << ") rotate(-90)\" text-anchor=\"middle\" "
        << "font-size=\"12\" font-weight=\"bold\">" << xml(s.axes[0]) << "</text>\n";
}

void svg_colour_bar(std::ostringstream& out, const Layout& L, float limit, bool any_nan) {
  out << "<rect x=\"" << num(L.bar_x) << "\" y=\"" << num(L.top) << "\" width=\"14\" height=\"" << num(L.bar_h)
      << "\" fill=\"url(#bar)\" stroke=\"#888888\" stroke-width=\"0.5\"/>\n";
  const std::vector<std::string> labels = bar_labels(limit);
  for (int i = 0; i <= 4; ++i) {
    const double y = L.top + L.bar_h * (1 - i / 4.0);
    out << "<line x1=\"" << num(L.bar_x + 14) << "\" y1=\"" << num(y) << "\" x2=\"" << num(L.bar_x + 18) << "\" y2=\""
        << num(y) << "\" stroke=\"#444444\"/>"
        << "<text x=\"" << num(L.bar_x + 21) << "\" y=\"" << num(y) << "\" dy=\"0.35em\" font-size=\"10\">"
        << labels[i] << "</text>\n";
  }
  if (any_nan)
    out << "<rect x=\"" << num(L.bar_x) << "\" y=\"" << num(L.top + L.bar_h + 10)
        << "\" width=\"14\" height=\"14\" fill=\"url(#nan)\" stroke=\"#888888\" stroke-width=\"0.5\"/>"
        << "<text x=\"" << num(L.bar_x + 20) << "\" y=\"" << num(L.top + L.bar_h + 17)
        << "\" dy=\"0.35em\" font-size=\"10\">no value</text>\n";
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

nlohmann::json nested(const Tensor& t, size_t axis, int64_t offset, const std::vector<int64_t>& st) {
  nlohmann::json arr = nlohmann::json::array();
  for (int64_t i = 0; i < t.size(static_cast<int>(axis)); ++i) {
    const int64_t at = offset + i * st[axis];
    if (axis + 1 < static_cast<size_t>(t.dim())) {
      arr.push_back(nested(t, axis + 1, at, st));
    } else {
      const float v = t.data()[at];
      arr.push_back(std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(tidy(v)));
    }
  }
  return arr;
}

std::string lower_extension(const std::filesystem::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e;
}

// The heatmap through Graphviz (png, pdf): the SVG goes to a file of its own, as Graphviz reads
// images from files and remembers them by name.
std::string rasterized_heatmap(const SweepResult& s, const HeatmapOptions& o, const std::string& format) {
  static std::atomic<unsigned> counter{0};
  const auto tmp = std::filesystem::temp_directory_path() /
                   ("pathpatch-heatmap-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + ".svg");
  double width = 0, height = 0;
  write_file(tmp, heatmap_document(s, o, &width, &height));
  try {
    // Twice the SVG's size: crisp text on screens that scale pictures up.
    std::string bytes = rasterize_image(tmp, format, 2 * width, 2 * height);
    std::filesystem::remove(tmp);
    return bytes;
  } catch (...) {
    std::filesystem::remove(tmp);
    throw;
  }
}

}  // namespace

std::string diverging_colour(float t) {
  // ColorBrewer's RdBu, blue for negative.
  static const int stops[7][3] = {{33, 102, 172},  {103, 169, 207}, {209, 229, 240}, {247, 247, 247},
                                  {253, 219, 199}, {239, 138, 98},  {178, 24, 43}};
  if (std::isnan(t)) t = 0;
  t = std::clamp(t, -1.0f, 1.0f);
  const float x = (t + 1.0f) * 3.0f;  // 0 .. 6
  const int i = std::min(static_cast<int>(x), 5);
  const float f = x - static_cast<float>(i);
  char buf[8];
  int rgb[3];
  for (int k = 0; k < 3; ++k) rgb[k] = static_cast<int>(std::lround(stops[i][k] + f * (stops[i + 1][k] - stops[i][k])));
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
  return buf;
}

SweepResult relative_to(const SweepResult& s, Baseline b) {
  if (b == Baseline::None) return s;
  const float base = b == Baseline::Clean ? s.clean : s.corrupted;
  SweepResult r = s;
  std::vector<float> v(s.values.data(), s.values.data() + s.values.numel());
  for (float& x : v) x -= base;
  r.values = Tensor::from_vector(s.values.shape(), std::move(v));
  // Each row's values from that row's own unpatched value.
  const std::vector<float>& row_base = b == Baseline::Clean ? s.clean_rows : s.corrupted_rows;
  if (s.per_example.defined() && static_cast<int64_t>(row_base.size()) == s.per_example.size(-1)) {
    const int64_t B = s.per_example.size(-1);
    std::vector<float> rows(s.per_example.data(), s.per_example.data() + s.per_example.numel());
    for (int64_t i = 0; i < static_cast<int64_t>(rows.size()); ++i) rows[i] -= row_base[i % B];
    r.per_example = Tensor::from_vector(s.per_example.shape(), std::move(rows));
  } else {
    r.per_example = Tensor();
  }
  for (float& x : r.clean_rows) x -= base;  // the rows' baselines move with the batch's
  for (float& x : r.corrupted_rows) x -= base;
  r.metric = "change in " + (s.metric.empty() ? std::string("metric") : s.metric) + " from " +
             (b == Baseline::Clean ? "clean" : "corrupted");
  return r;
}

SweepResult reduce_sweep(const SweepResult& s, const HeatmapOptions& o) {
  const int dims = s.values.dim();
  if (dims <= 2) return s;
  int axis = dims - 1;
  const std::string want = o.reduce_axis.empty() ? "head" : o.reduce_axis;
  auto it = std::find(s.axes.begin(), s.axes.end(), want);
  if (it != s.axes.end()) axis = static_cast<int>(it - s.axes.begin());
  else if (!o.reduce_axis.empty())
    throw InputError("heatmap: the sweep has no axis \"" + o.reduce_axis + "\" to reduce (axes: " + joined(s.axes, ", ") + ")");
  const int64_t n = s.values.size(axis);
  if (o.fixed_index >= n)
    throw InputError("heatmap: index " + std::to_string(o.fixed_index) + " is past the " + std::to_string(n) +
                     " entries of axis \"" + s.axes.at(axis) + "\"");
  SweepResult r = s;
  Shape shape = s.values.shape();
  shape.erase(shape.begin() + axis);
  r.axes.erase(r.axes.begin() + axis);
  r.labels.erase(r.labels.begin() + axis);
  const std::string label = axis < static_cast<int>(s.labels.size()) && o.fixed_index >= 0 ? s.labels[axis].at(o.fixed_index) : "";
  r.title += o.fixed_index >= 0 ? " (" + s.axes.at(axis) + " " + label + ")"
                                : " (" + std::string(reduce_name(o.reduce)) + " over " + s.axes.at(axis) + ")";
  std::vector<float> out;
  const std::vector<int64_t> st = strides(s.values.shape());
  const int64_t outer = st[0] * s.values.size(0) / (st[axis] * n), inner = st[axis];
  for (int64_t a = 0; a < outer; ++a)
    for (int64_t b = 0; b < inner; ++b) {
      std::vector<float> along;
      for (int64_t i = 0; i < n; ++i) along.push_back(s.values.data()[(a * n + i) * inner + b]);
      out.push_back(o.fixed_index >= 0 ? along[o.fixed_index] : reduce_values(along, o.reduce));
    }
  r.values = Tensor::from_vector(shape, std::move(out));
  r.per_example = Tensor();  // reduced maps are pictures; the rows stay in the sweep itself
  return r;
}

std::string heatmap_document(const SweepResult& sweep, const HeatmapOptions& o, double* width, double* height) {
  SweepResult s = reduce_sweep(relative_to(sweep, o.baseline), o);
  if (s.values.dim() > 2 || s.values.dim() < 1)
    throw InputError("heatmap: needs a sweep of one or two axes after reducing, not " + to_string(s.values.shape()));
  const std::vector<std::string> row_ticks = ticks(s, 0, o), col_ticks = ticks(s, 1, o);
  float limit = o.limit;
  bool any_nan = false;
  for (int64_t i = 0; i < s.values.numel(); ++i) {
    const float v = s.values.data()[i];
    any_nan = any_nan || std::isnan(v);
    if (o.limit <= 0 && !std::isnan(v)) limit = std::max(limit, std::fabs(v));
  }
  if (!(limit > 0)) limit = 1;
  const std::string title = o.title.empty() ? s.title + (s.metric.empty() ? "" : " \u2014 " + s.metric) : o.title;
  std::string bar_label;  // the colour bar's widest label
  for (const std::string& label : bar_labels(limit))
    if (label.size() > bar_label.size()) bar_label = label;
  const Layout L = layout(row_ticks, col_ticks, title, bar_label, o);
  if (width) *width = std::round(L.width);
  if (height) *height = std::round(L.height);

  std::ostringstream out;
  out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << num(L.width, "%.0f") << "\" height=\""
      << num(L.height, "%.0f") << "\" viewBox=\"0 0 " << num(L.width, "%.0f") << " " << num(L.height, "%.0f")
      << "\" font-family=\"Helvetica, Arial, sans-serif\">\n";
  svg_defs(out);
  out << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  out << "<text class=\"title\" x=\"12\" y=\"24\" font-size=\"15\" font-weight=\"bold\">" << xml(title) << "</text>\n";
  if (std::isnan(s.corrupted))  // one run (direct logit attribution): its own value
    out << "<text x=\"12\" y=\"44\" font-size=\"11\" fill=\"#444444\">the run's value " << num(s.clean)
        << "</text>\n";
  else if (s.clean != 0 || s.corrupted != 0)
    out << "<text x=\"12\" y=\"44\" font-size=\"11\" fill=\"#444444\">clean " << num(s.clean) << ", corrupted "
        << num(s.corrupted) << "</text>\n";
  svg_cells(out, s, L, limit, row_ticks, col_ticks, o);
  svg_axes(out, s, L, row_ticks, col_ticks);
  svg_colour_bar(out, L, limit, any_nan);
  out << "</svg>\n";
  return out.str();
}

std::string heatmap_svg(const SweepResult& s, const HeatmapOptions& o) { return heatmap_document(s, o, nullptr, nullptr); }

std::string sweep_csv(const SweepResult& s) {
  std::ostringstream out;
  std::vector<std::string> header;
  for (const auto& a : s.axes) header.push_back(csv_field(a));
  header.push_back("value");
  // Batches of several rows: each row's value after the mean.
  const int64_t B = s.per_example.defined() ? s.per_example.size(-1) : 0;
  for (int64_t b = 0; B > 1 && b < B; ++b) header.push_back("row" + std::to_string(b));
  out << joined(header, ",") << "\n";
  const Shape& shape = s.values.shape();
  const std::vector<int64_t> st = strides(shape);
  for (int64_t flat = 0; flat < s.values.numel(); ++flat) {
    for (size_t a = 0; a < shape.size(); ++a) {
      const int64_t i = flat / st[a] % shape[a];
      const bool labelled = a < s.labels.size() && static_cast<size_t>(i) < s.labels[a].size();
      out << csv_field(labelled ? s.labels[a][i] : std::to_string(i)) << ",";
    }
    const float v = s.values.data()[flat];
    out << (std::isnan(v) ? "nan" : num(v, "%.9g"));
    for (int64_t b = 0; B > 1 && b < B; ++b) {
      const float r = s.per_example.data()[flat * B + b];
      out << "," << (std::isnan(r) ? "nan" : num(r, "%.9g"));
    }
    out << "\n";
  }
  return out.str();
}

std::string sweep_json(const SweepResult& s) {
  nlohmann::json j;
  j["title"] = s.title;
  j["metric"] = s.metric;
  j["clean"] = tidy(s.clean);
  j["corrupted"] = tidy(s.corrupted);
  j["axes"] = s.axes;
  j["labels"] = s.labels;
  j["shape"] = s.values.shape();
  j["values"] = s.values.dim() == 0 ? nlohmann::json::array() : nested(s.values, 0, 0, strides(s.values.shape()));
  if (s.per_example.defined()) {
    j["per_example"] = nested(s.per_example, 0, 0, strides(s.per_example.shape()));
    j["clean_rows"] = s.clean_rows;
    j["corrupted_rows"] = s.corrupted_rows;
  }
  return j.dump();
}

SweepResult attention_sweep(const Tensor& pattern, const std::vector<std::string>& tokens, const std::string& title) {
  if (pattern.dim() != 2 || pattern.size(0) != pattern.size(1))
    throw InputError("attention_sweep: expected one head's pattern [T, T], got " + to_string(pattern.shape()));
  if (static_cast<int64_t>(tokens.size()) != pattern.size(0))
    throw InputError("attention_sweep: " + std::to_string(tokens.size()) + " tokens for " +
                     std::to_string(pattern.size(0)) + " positions");
  SweepResult s;
  s.title = title;
  s.metric = "attention";
  s.axes = {"query", "key"};
  std::vector<std::string> labels;
  for (size_t t = 0; t < tokens.size(); ++t) {
    std::string label = tokens[t];
    label.append(" (").append(std::to_string(t)).append(")");
    labels.push_back(label);
  }
  s.labels = {labels, labels};
  s.values = pattern.clone();
  return s;
}

void write_sweep(const SweepResult& s, const std::filesystem::path& path, const HeatmapOptions& o) {
  const std::string ext = lower_extension(path);
  if (ext == ".svg") return write_file(path, heatmap_svg(s, o));
  if (ext == ".csv") return write_file(path, sweep_csv(s));
  if (ext == ".json") return write_file(path, sweep_json(s));
  if (ext == ".png" || ext == ".pdf") return write_file(path, rasterized_heatmap(s, o, ext.substr(1)));
  throw RenderError("write_sweep: cannot tell what to write to \"" + path.string() +
                    "\"; use .svg, .png or .pdf (heatmap), .csv or .json");
}

}  // namespace pathpatch::viz
