#pragma once
// A small RAII wrapper over Graphviz's C libraries (cgraph builds the graph, gvc lays it out and
// renders it), enough for pathpatch's diagrams.
//
//   namespace viz = pathpatch::viz;
//   viz::Digraph g("model");
//   g.set("rankdir", "BT");                                   // graph attribute
//   g.node("emb", {{"label", "emb"}, {"shape", "box"}});       // creates or updates a node
//   g.node("a0");
//   g.edge("emb", "a0", {{"penwidth", "2"}});                  // a new edge on every call
//   g.same_rank({"emb", "a0"});                                // a subgraph with rank=same
//   std::string svg = g.render("svg");                         // in memory
//   g.render_file("model.png");                                // format from the extension
//   std::string src = g.dot();                                 // the DOT source, not laid out
//
// Formats: "dot" (and "gv") give the DOT source as built, without layout; every other name goes
// to Graphviz ("svg", "png", "pdf", ...: output_formats() lists what this installation offers).
// An unknown format, a layout engine that is missing or fails, and a file that cannot be written
// are Errors (RenderError, IoError for the file), never a crash or a message on stderr.
// Graphviz keeps global state and is not thread-safe: every call into it holds one process-wide lock.
#include <cstddef>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

struct Agraph_s;  // cgraph's graph (Agraph_t), kept out of this header

namespace pathpatch::viz {

using Attrs = std::vector<std::pair<std::string, std::string>>;

class Digraph {
 public:
  explicit Digraph(const std::string& name = "G");
  ~Digraph();
  Digraph(Digraph&& other) noexcept;
  Digraph& operator=(Digraph&& other) noexcept;
  Digraph(const Digraph&) = delete;
  Digraph& operator=(const Digraph&) = delete;

  // Graph attributes, and defaults for every node / edge (set before adding them).
  void set(const std::string& attr, const std::string& value);
  void node_defaults(const Attrs& attrs);
  void edge_defaults(const Attrs& attrs);

  void node(const std::string& id, const Attrs& attrs = {});  // creates it, or sets more attributes
  // A new edge (endpoints created if absent); parallel edges are allowed.
  void edge(const std::string& from, const std::string& to, const Attrs& attrs = {});
  // The nodes on one rank (a subgraph with rank=same); absent ids are created. `ordered` keeps them
  // in the given order across the rank (with invisible edges: dot otherwise reorders, and mirrors
  // clusters under rankdir=BT).
  void same_rank(const std::vector<std::string>& ids, bool ordered = false);
  // A boxed, labelled group of nodes (a Graphviz cluster), inside the cluster `parent` if given.
  // Calling it again with the same name adds nodes (and attributes) to the same cluster.
  void cluster(const std::string& name, const std::string& label, const std::vector<std::string>& ids,
               const Attrs& attrs = {}, const std::string& parent = "");

  bool has_node(const std::string& id) const;
  std::vector<std::string> node_ids() const;  // in creation order
  size_t node_count() const;
  size_t edge_count() const;
  // An attribute of a node ("" if unset or the node is absent), as tests and callers read them back.
  std::string node_attr(const std::string& id, const std::string& attr) const;

  std::string dot() const;                                     // DOT source, without layout
  std::string render(const std::string& format, const std::string& engine = "dot") const;
  void render_file(const std::filesystem::path& path, const std::string& engine = "dot") const;

 private:
  Agraph_s* g_ = nullptr;
  int subgraphs_ = 0;                          // for unique subgraph names
  std::map<std::string, Agraph_s*> clusters_;  // by name, nested ones included
};

// Output formats this Graphviz offers, plus "dot" and "gv" (the source), sorted.
std::vector<std::string> output_formats();
// The format a file's extension names ("png" for "a/b.png"); RenderError if it has none or Graphviz
// does not offer it.
std::string format_for_path(const std::filesystem::path& path);
// RenderError unless `format` is one of output_formats(); the message lists the valid ones.
void check_format(const std::string& format);

// An image file Graphviz can read (SVG, PNG, ...) drawn alone into `format` ("png", "pdf"),
// stretched to width x height pixels (points, for vector formats): how an SVG written by hand
// (heatmap.hpp) becomes a PNG without another library. An SVG file must start with "<?xml".
std::string rasterize_image(const std::filesystem::path& image, const std::string& format, double width, double height);

// Writes bytes to a file; IoError naming the path if it cannot.
void write_file(const std::filesystem::path& path, const std::string& bytes);

}  // namespace pathpatch::viz
