// The Graphviz wrapper: cgraph for the graph, gvc for layout and output (see graphviz.hpp).
#include "viz/graphviz.hpp"

#include <graphviz/cgraph.h>
#include <graphviz/gvc.h>

#include <algorithm>
#include <cctype>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <set>

#include "graph/error.hpp"
#include "graph/files.hpp"

namespace pathpatch::viz {

namespace {

// Graphviz's state is global (plugins, error handler, string pools): one lock for every call.
std::mutex& gv_lock() {
  static std::mutex m;
  return m;
}

// What Graphviz reported since the last clear(); its messages come here instead of stderr.
std::string& gv_messages() {
  static std::string s;
  return s;
}

int collect_message(char* msg) {
  gv_messages() += msg;
  return 0;
}

std::string trimmed_messages() {
  std::string s = gv_messages();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s.empty() ? "no message from Graphviz" : s;
}

// One context for the process (loading the plugins is slow), freed at exit. Call with the lock held.
// gvContext() also sets cgraph's default node label ("\N", the node's name), so it comes before
// the first agopen.
GVC_t* context() {
  struct Holder {
    GVC_t* gvc;
    Holder() {
      agseterrf(collect_message);
      gvc = gvContext();
    }
    ~Holder() {
      if (gvc) gvFreeContext(gvc);
    }
  };
  static Holder holder;
  if (!holder.gvc) throw RenderError("Graphviz: could not create a rendering context");
  return holder.gvc;
}

// cgraph 2.42 takes char* but never writes through it.
char* cs(const std::string& s) { return const_cast<char*>(s.c_str()); }

// Declares an attribute on first use with the default Graphviz itself would use, then sets it.
void set_attr(Agraph_t* root, void* obj, int kind, const std::string& name, const std::string& value) {
  Agsym_t* sym = agattr(root, kind, cs(name), nullptr);
  if (!sym) {
    std::string def = (kind == AGNODE && name == "label") ? "\\N" : "";
    sym = agattr(root, kind, cs(name), cs(def));
  }
  agxset(obj, sym, cs(value));
}

// Devices that open windows: listed by Graphviz, useless (or worse) for a library.
bool interactive(const std::string& f) { return f == "gtk" || f == "x11" || f == "xlib"; }

std::vector<std::string> formats_locked(GVC_t* gvc) {
  std::set<std::string> names{"dot", "gv"};
  int n = 0;
  char** list = gvPluginList(gvc, "device", &n, nullptr);
  for (int i = 0; list && i < n; ++i) {
    std::string f = list[i];
    f = f.substr(0, f.find(':'));  // "png:cairo" -> "png"
    if (!interactive(f)) names.insert(f);
    free(list[i]);
  }
  free(list);
  return {names.begin(), names.end()};
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) {
    if (!s.empty()) s += ", ";
    s += x;
  }
  return s;
}

void check_format_locked(GVC_t* gvc, const std::string& format) {
  std::vector<std::string> valid = formats_locked(gvc);
  if (std::find(valid.begin(), valid.end(), format) == valid.end())
    throw RenderError("unknown output format \"" + format + "\"; Graphviz here renders: " + joined(valid));
}

// Layout and render under the lock; the layout is freed whatever happens.
std::string layout_and_render(GVC_t* gvc, Agraph_t* g, const std::string& format, const std::string& engine) {
  check_format_locked(gvc, format);
  gv_messages().clear();
  if (gvLayout(gvc, g, engine.c_str()) != 0) {
    gvFreeLayout(gvc, g);
    throw RenderError("Graphviz layout \"" + engine + "\" failed: " + trimmed_messages());
  }
  char* data = nullptr;
  unsigned int length = 0;
  int rc = gvRenderData(gvc, g, format.c_str(), &data, &length);
  std::string out;
  if (rc == 0 && data) out.assign(data, length);
  if (data) gvFreeRenderData(data);
  gvFreeLayout(gvc, g);
  set_attr(g, g, AGRAPH, "bb", "");  // gvLayout leaves a bounding box behind; keep dot() layout-free
  if (rc != 0) throw RenderError("Graphviz could not render \"" + format + "\": " + trimmed_messages());
  return out;
}

}  // namespace

Digraph::Digraph(const std::string& name) {
  std::lock_guard<std::mutex> lock(gv_lock());
  context();
  g_ = agopen(cs(name), Agdirected, nullptr);
  if (!g_) throw RenderError("Graphviz: could not create graph \"" + name + "\"");
}

Digraph::~Digraph() {
  if (!g_) return;
  std::lock_guard<std::mutex> lock(gv_lock());
  agclose(g_);
}

Digraph::Digraph(Digraph&& other) noexcept
    : g_(other.g_), subgraphs_(other.subgraphs_), clusters_(std::move(other.clusters_)) {
  other.g_ = nullptr;
}

Digraph& Digraph::operator=(Digraph&& other) noexcept {
  std::swap(g_, other.g_);
  std::swap(subgraphs_, other.subgraphs_);
  std::swap(clusters_, other.clusters_);
  return *this;
}

void Digraph::set(const std::string& attr, const std::string& value) {
  std::lock_guard<std::mutex> lock(gv_lock());
  set_attr(g_, g_, AGRAPH, attr, value);
}

void Digraph::node_defaults(const Attrs& attrs) {
  std::lock_guard<std::mutex> lock(gv_lock());
  for (const auto& [k, v] : attrs) agattr(g_, AGNODE, cs(k), cs(v));
}

void Digraph::edge_defaults(const Attrs& attrs) {
  std::lock_guard<std::mutex> lock(gv_lock());
  for (const auto& [k, v] : attrs) agattr(g_, AGEDGE, cs(k), cs(v));
}

void Digraph::node(const std::string& id, const Attrs& attrs) {
  std::lock_guard<std::mutex> lock(gv_lock());
  Agnode_t* n = agnode(g_, cs(id), 1);
  for (const auto& [k, v] : attrs) set_attr(g_, n, AGNODE, k, v);
}

void Digraph::edge(const std::string& from, const std::string& to, const Attrs& attrs) {
  std::lock_guard<std::mutex> lock(gv_lock());
  Agnode_t* t = agnode(g_, cs(from), 1);
  Agnode_t* h = agnode(g_, cs(to), 1);
  Agedge_t* e = agedge(g_, t, h, nullptr, 1);
  for (const auto& [k, v] : attrs) set_attr(g_, e, AGEDGE, k, v);
}

void Digraph::same_rank(const std::vector<std::string>& ids, bool ordered) {
  std::lock_guard<std::mutex> lock(gv_lock());
  std::string name = "rank_" + std::to_string(subgraphs_++);
  Agraph_t* s = agsubg(g_, cs(name), 1);
  set_attr(g_, s, AGRAPH, "rank", "same");
  for (const auto& id : ids) agsubnode(s, agnode(g_, cs(id), 1), 1);
  for (size_t i = 1; ordered && i < ids.size(); ++i) {
    Agedge_t* e = agedge(s, agnode(s, cs(ids[i - 1]), 0), agnode(s, cs(ids[i]), 0), nullptr, 1);
    set_attr(g_, e, AGEDGE, "style", "invis");
  }
}

void Digraph::cluster(const std::string& name, const std::string& label, const std::vector<std::string>& ids,
                      const Attrs& attrs, const std::string& parent) {
  std::lock_guard<std::mutex> lock(gv_lock());
  Agraph_t*& s = clusters_[name];
  if (!s) {
    auto p = clusters_.find(parent);
    if (!parent.empty() && p == clusters_.end())
      throw RenderError("cluster \"" + name + "\": no parent cluster \"" + parent + "\"");
    s = agsubg(parent.empty() ? g_ : p->second, cs("cluster_" + name), 1);
  }
  set_attr(g_, s, AGRAPH, "label", label);
  for (const auto& [k, v] : attrs) set_attr(g_, s, AGRAPH, k, v);
  for (const auto& id : ids) agsubnode(s, agnode(g_, cs(id), 1), 1);
}

bool Digraph::has_node(const std::string& id) const {
  std::lock_guard<std::mutex> lock(gv_lock());
  return agnode(g_, cs(id), 0) != nullptr;
}

std::vector<std::string> Digraph::node_ids() const {
  std::lock_guard<std::mutex> lock(gv_lock());
  std::vector<std::string> ids;
  for (Agnode_t* n = agfstnode(g_); n; n = agnxtnode(g_, n)) ids.emplace_back(agnameof(n));
  return ids;
}

size_t Digraph::node_count() const {
  std::lock_guard<std::mutex> lock(gv_lock());
  return static_cast<size_t>(agnnodes(g_));
}

size_t Digraph::edge_count() const {
  std::lock_guard<std::mutex> lock(gv_lock());
  return static_cast<size_t>(agnedges(g_));
}

std::string Digraph::node_attr(const std::string& id, const std::string& attr) const {
  std::lock_guard<std::mutex> lock(gv_lock());
  Agnode_t* n = agnode(g_, cs(id), 0);
  Agsym_t* sym = agattr(g_, AGNODE, cs(attr), nullptr);
  if (!n || !sym) return "";
  const char* v = agxget(n, sym);
  return v ? v : "";
}

std::string Digraph::dot() const {
  std::lock_guard<std::mutex> lock(gv_lock());
  char* buf = nullptr;
  size_t size = 0;
  FILE* f = open_memstream(&buf, &size);
  if (!f) throw RenderError("could not open a memory stream for the DOT source");
  int rc = agwrite(g_, f);
  fclose(f);
  std::string out(buf ? buf : "", size);
  free(buf);
  if (rc != 0) throw RenderError("Graphviz could not write the DOT source");
  return out;
}

std::string Digraph::render(const std::string& format, const std::string& engine) const {
  if (format == "dot" || format == "gv") return dot();
  std::lock_guard<std::mutex> lock(gv_lock());
  return layout_and_render(context(), g_, format, engine);
}

void Digraph::render_file(const std::filesystem::path& path, const std::string& engine) const {
  write_file(path, render(format_for_path(path), engine));
}

std::vector<std::string> output_formats() {
  std::lock_guard<std::mutex> lock(gv_lock());
  return formats_locked(context());
}

void check_format(const std::string& format) {
  std::lock_guard<std::mutex> lock(gv_lock());
  check_format_locked(context(), format);
}

std::string format_for_path(const std::filesystem::path& path) {
  std::string ext = path.extension().string();
  if (ext.size() < 2)
    throw RenderError("cannot tell the output format of \"" + path.string() +
                      "\": the file name has no extension (valid: " + joined(output_formats()) + ")");
  std::string format = ext.substr(1);
  std::transform(format.begin(), format.end(), format.begin(), [](unsigned char c) { return std::tolower(c); });
  check_format(format);
  return format;
}

std::string rasterize_image(const std::filesystem::path& image, const std::string& format, double width, double height) {
  if (!std::filesystem::exists(image)) throw IoError("rasterize_image: no such file " + image.string());
  std::lock_guard<std::mutex> lock(gv_lock());
  GVC_t* gvc = context();
  Agraph_t* g = agopen(cs("image"), Agdirected, nullptr);
  if (!g) throw RenderError("Graphviz: could not create a graph for the image");
  // One borderless node of the asked size whose picture is the image, stretched to fill it; pad
  // and margins off, and 72 dpi, so one point is one pixel.
  set_attr(g, g, AGRAPH, "pad", "0");
  set_attr(g, g, AGRAPH, "margin", "0");
  set_attr(g, g, AGRAPH, "dpi", "72");
  Agnode_t* n = agnode(g, cs("image"), 1);
  for (const auto& [k, v] : Attrs{{"shape", "none"}, {"label", ""}, {"margin", "0"}, {"fixedsize", "true"},
                                  {"width", std::to_string(width / 72.0)}, {"height", std::to_string(height / 72.0)},
                                  {"imagescale", "both"}, {"image", std::filesystem::absolute(image).string()}})
    set_attr(g, n, AGNODE, k, v);
  try {
    std::string out = layout_and_render(gvc, g, format, "dot");
    // Graphviz warns rather than fails when it cannot read the image: an empty picture is an error.
    if (gv_messages().find("image") != std::string::npos)
      throw RenderError("Graphviz could not read the image " + image.string() + ": " + trimmed_messages());
    agclose(g);
    return out;
  } catch (...) {
    agclose(g);
    throw;
  }
}

void write_file(const std::filesystem::path& path, const std::string& bytes) { files::write(path, bytes); }

}  // namespace pathpatch::viz
