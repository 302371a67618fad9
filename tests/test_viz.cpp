// viz/: the Graphviz wrapper, provenance / model / circuit diagrams, heatmaps, CSV and JSON. Everything
// is rendered in memory and checked for structure; "[.render]" (hidden) writes docs/images/*.png.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_set>

#include "helpers.hpp"
#include "models/checkpoint.hpp"
#include "viz/diagrams.hpp"
#include "viz/graphviz.hpp"
#include "viz/heatmap.hpp"

namespace pp = pathpatch;
namespace viz = pathpatch::viz;

namespace {

pp::Batch clean() { return pp::Batch::from_rows({{3, 14, 15, 92, 65, 35, 89}, {7, 7, 1, 2, 3, 4, 5}}); }
pp::Batch corrupt() { return pp::Batch::from_rows({{3, 14, 15, 92, 11, 35, 89}, {7, 7, 1, 2, 9, 4, 5}}); }

// nano-path-patching's README experiment: split a1, every path through it reads input 1.
pp::Split split_a1(const pp::Path& p) { return p.back() == "a1" ? pp::Split::Edges : pp::Split::None; }
int through_a1(const pp::Path& p) { return p.contains("a1") ? 1 : 0; }

// Steps a result depends on: arguments, and the sources of values patched in by a replace.
size_t reachable_steps(const pp::Result& r) {
  const pp::ExprTable& t = r.cache->exprs();
  std::unordered_set<pp::ExprId> seen{r.root};
  std::vector<pp::ExprId> todo{r.root};
  while (!todo.empty()) {
    const pp::Expr& x = t.get(todo.back());
    todo.pop_back();
    std::vector<pp::ExprId> reads = x.args;
    for (const pp::BoundIntervention& iv : t.list(x.interventions))
      if (iv.op == pp::Op::Replace) reads.push_back(iv.source);
    for (pp::ExprId a : reads)
      if (seen.insert(a).second) todo.push_back(a);
  }
  return seen.size();
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

// Edges drawn (invisible ones only hold ranks in order).
size_t visible_edges(const std::string& dot) { return count(dot, "->") - count(dot, "invis"); }

std::vector<std::string> step_nodes(const viz::Digraph& g) {
  std::vector<std::string> ids;
  for (const auto& id : g.node_ids())
    if (id[0] == 's') ids.push_back(id);
  return ids;
}

pp::Result plain_run(const pp::Model& m) {
  return pp::run(m, {clean(), corrupt()}, [](const pp::Path&) { return 0; }, pptest::no_split);
}

// A GPT-2 shaped random model, small enough to run in a test.
pp::Model random_model(int layers, int heads = 12, uint64_t seed = 7) {
  const pp::ModelConfig cfg = pp::ModelConfig::parse(
      R"({"model_type": "gpt2", "n_layer": )" + std::to_string(layers) + R"(, "n_head": )" + std::to_string(heads) +
          R"(, "n_embd": )" + std::to_string(4 * heads) + R"(, "vocab_size": 50, "n_positions": 16})",
      "random_model");
  return pp::Model(cfg, pp::Checkpoint::random(cfg, seed));
}

// A hand-made layer x head sweep with one NaN cell.
pp::SweepResult small_sweep() {
  pp::SweepResult s;
  s.title = "senders";
  s.metric = "logit difference";
  s.axes = {"layer", "head"};
  s.labels = {{"0", "1", "2"}, {"0", "1", "2", "mlp"}};
  s.values = pp::Tensor::from_vector({3, 4}, {0.1f, -0.9f, 0.2f, 0.0f,  //
                                              0.6f, std::nanf(""), -0.05f, 0.3f,  //
                                              1.2f, 0.0f, -0.4f, 0.51f});
  s.clean = 2.5f;
  s.corrupted = -1.0f;
  return s;
}

}  // namespace

TEST_CASE("graphviz wrapper: nodes, edges, ranks, DOT and rendered formats", "[viz]") {
  viz::Digraph g("t");
  g.set("rankdir", "LR");
  g.node("a", {{"label", "first"}, {"fillcolor", "#ff0000"}});
  g.node("b");
  g.edge("a", "b", {{"penwidth", "2"}});
  g.edge("b", "c");  // creates c
  g.same_rank({"b", "c"});
  g.cluster("box", "a box", {"a"});
  CHECK(g.node_count() == 3);
  CHECK(g.edge_count() == 2);
  CHECK(g.has_node("c"));
  CHECK(g.node_attr("a", "fillcolor") == "#ff0000");
  CHECK(g.node_ids() == std::vector<std::string>{"a", "b", "c"});
  std::string dot = g.dot();
  CHECK(dot.find("rank=same") != std::string::npos);
  CHECK(dot.find("cluster_box") != std::string::npos);
  CHECK(dot.find("first") != std::string::npos);
  CHECK(g.render("gv") == dot);

  std::string svg = g.render("svg");
  CHECK(svg.find("<svg") != std::string::npos);
  CHECK(svg.find("first") != std::string::npos);
  std::string png = g.render("png");
  REQUIRE(png.size() > 8);
  CHECK(png.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
  CHECK(g.render("pdf").substr(0, 5) == "%PDF-");
  CHECK(g.dot() == dot);  // rendering leaves no layout behind
  CHECK(viz::format_for_path("x/y.SVG") == "svg");
}

TEST_CASE("graphviz wrapper: an unknown format or layout is a RenderError that lists what is valid", "[viz][refuse]") {
  viz::Digraph g;
  g.edge("a", "b");
  CHECK_THROWS_AS(g.render("foo"), pp::RenderError);
  CHECK_THROWS_WITH(g.render("foo"), Catch::Contains("\"foo\"") && Catch::Contains("png") && Catch::Contains("svg"));
  CHECK_THROWS_WITH(g.render_file("out.foo"), Catch::Contains("\"foo\"") && Catch::Contains("pdf"));
  CHECK_THROWS_WITH(g.render_file("no_extension"), Catch::Contains("no extension"));
  CHECK_THROWS_WITH(g.render("svg", "nonesuch"), Catch::Contains("nonesuch"));
  CHECK_THROWS_AS(g.render_file("/nonexistent-dir/x.svg"), pp::IoError);
  // An image Graphviz cannot read is an error, not an empty picture.
  auto junk = std::filesystem::temp_directory_path() / "pathpatch-test-junk.svg";
  viz::write_file(junk, "not an image");
  CHECK_THROWS_AS(viz::rasterize_image(junk, "png", 10, 10), pp::RenderError);
  std::filesystem::remove(junk);
  CHECK_THROWS_AS(viz::rasterize_image(junk, "png", 10, 10), pp::IoError);
  CHECK(g.render("svg").find("<svg") != std::string::npos);  // still usable afterwards
}

TEST_CASE("provenance: one node per distinct step, labelled, edges toward the output", "[viz]") {
  const pp::Model& m = pptest::model("gpt2");
  pp::Result r = pp::run(m, {clean(), corrupt()}, through_a1, split_a1);
  auto o = viz::DiagramOptions::for_inputs({clean(), corrupt()}, {"clean", "corrupted"});
  o.collapse = false;
  o.legend = false;
  viz::Digraph g = viz::provenance_graph(r, m, o);
  CHECK(g.node_count() == reachable_steps(r));
  CHECK(step_nodes(g).size() == reachable_steps(r));
  std::string dot = viz::provenance_dot(r, m, o);
  for (const char* label : {"emb", "a0.head z", "a1.head out", "f0.head", "ln_final", "clean", "corrupted"}) {
    INFO(label);
    CHECK(dot.find(label) != std::string::npos);
  }
  // Edges run from the inputs toward the output: ln_final has no successor.
  CHECK(dot.find("s" + std::to_string(r.root) + " ->") == std::string::npos);

  // With the legend: one swatch per input and one for steps several inputs reach.
  o.legend = true;
  viz::Digraph withlegend = viz::provenance_graph(r, m, o);
  CHECK(withlegend.node_count() == reachable_steps(r) + 3);
  CHECK(withlegend.render("svg").find("several inputs") != std::string::npos);
}

TEST_CASE("provenance: one fill colour per input, shared by the steps only it reaches", "[viz]") {
  const pp::Model& m = pptest::model("gpt2");
  pp::Result r = pp::run(m, {clean(), corrupt()}, through_a1, split_a1);
  auto o = viz::DiagramOptions::for_inputs({clean(), corrupt()});
  o.collapse = false;
  viz::Digraph g = viz::provenance_graph(r, m, o);
  std::set<std::string> leaf_colours, single_colours;
  size_t mixed = 0;
  for (const auto& id : step_nodes(g)) {
    std::string fill = g.node_attr(id, "fillcolor");
    if (g.node_attr(id, "label").rfind("emb", 0) == 0) leaf_colours.insert(fill);
    if (fill.find(':') != std::string::npos) {
      ++mixed;
      CHECK(g.node_attr(id, "style") == "striped");
    } else {
      single_colours.insert(fill);
    }
  }
  CHECK(leaf_colours == std::set<std::string>{viz::input_colour(0), viz::input_colour(1)});
  CHECK(single_colours == leaf_colours);  // no step reading one input has a colour of its own
  CHECK(mixed > 0);                       // a1 and everything after it read both
  // Inputs the caller did not name still get a colour each.
  viz::Digraph unnamed = viz::provenance_graph(r, m, {});
  std::set<std::string> colours;
  for (const auto& id : step_nodes(unnamed))
    if (unnamed.node_attr(id, "label").rfind("emb", 0) == 0) colours.insert(unnamed.node_attr(id, "fillcolor"));
  CHECK(colours.size() == 2);
}

TEST_CASE("provenance: split heads, positions and patches are named", "[viz]") {
  const pp::Model& m = pptest::model("gpt2");
  auto o = viz::DiagramOptions::for_inputs({clean(), corrupt()});
  o.collapse = false;
  // Sender head 0.1 to the logits: a0's z gathers head 1 from the corrupted run.
  pp::Result heads = pp::path_patch(m, clean(), corrupt(), {{0, 1}}, {pp::Receiver::logits()});
  std::string dot = viz::provenance_dot(heads, m, o);
  CHECK(dot.find("a0.head z\\n(head 1 split)") != std::string::npos);
  CHECK(dot.find("label=\"head 1\"") != std::string::npos);  // the edge carrying it
  // Position 6 of a1's input from the clean run, the rest corrupted.
  auto by_pos = [](const pp::Path& p) {
    return p.back() == "a1" ? pp::Split::Edges : p.back() == "a1.head" ? pp::Split::Positions : pp::Split::None;
  };
  pp::Result rows = pp::run(m, {clean(), corrupt()}, [](const pp::Path& p) { return p.contains("a1.head.pos6") ? 0 : 1; },
                            by_pos);
  dot = viz::provenance_dot(rows, m, o);
  CHECK(dot.find("a1.head input\\n(by position)") != std::string::npos);
  CHECK(dot.find("pos 0-5") != std::string::npos);
  CHECK(dot.find("pos 6") != std::string::npos);
  // An intervention: a Patch step names the activation.
  pp::RunOptions ro;
  ro.interventions = {pp::replace("z1", 1, {{2}, {}})};
  pp::Result patched = pp::run(m, {clean(), corrupt()}, [](const pp::Path&) { return 0; }, pptest::no_split, ro);
  viz::Digraph pg = viz::provenance_graph(patched, m, o);
  dot = pg.dot();
  CHECK(dot.find("patched:") != std::string::npos);
  CHECK(dot.find("blocks.1.attn.hook_z head 2") != std::string::npos);
  // The value patched in comes from the corrupted run: its steps are drawn, with a dashed edge.
  CHECK(step_nodes(pg).size() == reachable_steps(patched));
  CHECK(step_nodes(pg).size() > reachable_steps(plain_run(m)));
  CHECK(dot.find("replaces") != std::string::npos);
  // Shapes and cache state on request.
  o.show_shapes = true;
  o.show_cache = true;
  dot = viz::provenance_dot(patched, m, o);
  CHECK(dot.find("[2, 7, 64]") != std::string::npos);
  CHECK(dot.find("[2, 7, 4, 16]") != std::string::npos);
  CHECK(dot.find("cached") != std::string::npos);
}

TEST_CASE("provenance: collapsing draws unsplit layers as one box per run", "[viz]") {
  pp::Model m = random_model(12, 4);
  pp::Batch a = pp::Batch::from_rows({{1, 2, 3, 4, 5, 6}}), b = pp::Batch::from_rows({{1, 2, 9, 4, 5, 6}});
  pp::Result r = pp::run(m, {a, b}, through_a1, split_a1);
  auto o = viz::DiagramOptions::for_inputs({a, b});
  o.legend = false;
  viz::Digraph g = viz::provenance_graph(r, m, o);
  std::string dot = g.dot();
  CHECK(dot.find("layers 2-11\\n(input 0, input 1)") != std::string::npos);
  CHECK(dot.find("layer 0\\n(input 0)") != std::string::npos);
  CHECK(dot.find("layer 0\\n(input 1)") != std::string::npos);
  CHECK(dot.find("a1.head\\n(input 1)") != std::string::npos);  // z and out in one box
  CHECK(dot.find("\"f1.head, f1\\n(input 0, input 1)\"") != std::string::npos);
  // emb x2, layer 0 x2, a1.head, a1 (where the inputs meet), f1.head + f1, layers 2-11, ln_final.
  CHECK(g.node_count() == 9);
  o.collapse = false;
  CHECK(viz::provenance_graph(r, m, o).node_count() == reachable_steps(r));
  // A file name renders and writes; a bare format only renders.
  auto path = std::filesystem::temp_directory_path() / "pathpatch-test-provenance.svg";
  std::string svg = viz::render_provenance(r, m, path.string(), o);
  CHECK(std::filesystem::file_size(path) == svg.size());
  std::filesystem::remove(path);
  CHECK(viz::render_provenance(r, m, "png", o).substr(1, 3) == "PNG");
  CHECK_THROWS_AS(viz::render_provenance(r, m, "foo", o), pp::RenderError);
}

TEST_CASE("model graph at each granularity", "[viz]") {
  const pp::Model& m = pptest::model("gpt2");  // 2 layers, 4 heads
  viz::Digraph layers = viz::model_graph(m, viz::Granularity::Layers);
  CHECK(layers.node_count() == 2 + 2 * 4);
  CHECK(layers.has_node("a1.head"));
  CHECK(layers.has_node("f0.head"));
  viz::Digraph heads = viz::model_graph(m, viz::Granularity::Heads);
  CHECK(heads.node_count() == 2 + 2 * (4 + 3));
  CHECK(heads.has_node("a1.head3"));
  viz::Digraph qkv = viz::model_graph(m, viz::Granularity::QKV);
  CHECK(qkv.node_count() == 2 + 2 * (4 + 3) + 2 * 4 * 3);
  CHECK(qkv.has_node("a0.head2.k"));
  std::string dot = viz::model_dot(m, viz::Granularity::Heads);
  CHECK(dot.find("cluster_layer1") != std::string::npos);
  CHECK(dot.find("lhead") != std::string::npos);
  CHECK(qkv.render("svg").find("<svg") != std::string::npos);  // nested clusters lay out
}

TEST_CASE("circuit from a sweep: cells above the threshold only, edges by sign and size", "[viz]") {
  pp::SweepResult s = small_sweep();
  viz::Digraph g = viz::circuit_graph(s, 0.5f);
  // |v| >= 0.5: -0.9 (0.1), 0.6 (1.0), 1.2 (2.0), 0.51 (2.mlp); NaN never.
  CHECK(visible_edges(g.dot()) == 4);
  std::set<std::string> cells;
  for (const auto& id : g.node_ids())
    if (id[0] == 'c') cells.insert(id);
  CHECK(cells == std::set<std::string>{"c1", "c4", "c8", "c11"});
  std::string dot = g.dot();
  CHECK(dot.find("a0.head1") != std::string::npos);
  CHECK(dot.find("f2.head") != std::string::npos);  // the MLP column
  CHECK(dot.find("logit difference") != std::string::npos);
  CHECK(dot.find(">= 0.5") != std::string::npos);
  CHECK(count(dot, viz::effect_colour(-1)) == 1);
  CHECK(count(dot, viz::effect_colour(1)) == 3);
  CHECK(dot.find("penwidth=6.00") != std::string::npos);  // the largest effect is the widest
  // Receiver sweeps: edges from the sender into each cell, and on to the output.
  viz::CircuitOptions o;
  o.sender = "a0.head3";
  CHECK(visible_edges(viz::circuit_graph(s, 0.5f, o).dot()) == 8);
  CHECK(visible_edges(viz::circuit_graph(s, 100.0f).dot()) == 0);
  // Effects measured from the clean value (2.5).
  o = {};
  o.baseline = viz::Baseline::Clean;
  std::string from_clean = viz::circuit_dot(s, 1.5f, o);
  CHECK(visible_edges(from_clean) == 10);  // 1.2 is only 1.3 from clean
  CHECK(from_clean.find("change in logit difference from clean") != std::string::npos);
  CHECK(viz::circuit_graph(s, 0.5f).render("png").substr(1, 3) == "PNG");
}

TEST_CASE("circuit from explicit weighted edges", "[viz]") {
  std::vector<viz::WeightedEdge> edges = {{"a0.head3", "a1.head2.q", 0.8f},
                                          {"a0.head1", "a1.head2.q", -0.05f},
                                          {"a1.head2", "logits", -1.5f},
                                          {"f0.head", "a1.head0.v", 0.1f}};
  viz::CircuitOptions o;
  o.metric = "logit difference";
  viz::Digraph g = viz::circuit_graph(edges, 0.5f, o);
  std::string dot = g.dot();
  CHECK(visible_edges(dot) == 2);
  CHECK(g.has_node("a0.head3"));
  CHECK(g.has_node("a1.head2.q"));
  CHECK(g.has_node("logits"));
  CHECK_FALSE(g.has_node("a0.head1"));
  CHECK_FALSE(g.has_node("f0.head"));
  CHECK(g.node_count() == 4 + 2 + 1);  // + a label per layer, + legend
  CHECK(dot.find("logit difference") != std::string::npos);
  CHECK(dot.find(viz::effect_colour(-1.5f)) != std::string::npos);
  CHECK(g.render("svg").find("a1.head2.q") != std::string::npos);
}

TEST_CASE("heatmap SVG: one rect per cell, title and metric, hatched NaN, colour bar", "[viz]") {
  pp::SweepResult s = small_sweep();
  std::string svg = viz::heatmap_svg(s);
  CHECK(svg.rfind("<?xml", 0) == 0);
  CHECK(count(svg, "class=\"cell") == 12);
  CHECK(count(svg, "class=\"cell nan\"") == 1);
  CHECK(svg.find("senders") != std::string::npos);
  CHECK(svg.find("logit difference") != std::string::npos);
  CHECK(svg.find("id=\"bar\"") != std::string::npos);
  CHECK(svg.find(">mlp<") != std::string::npos);     // tick labels
  CHECK(svg.find(">layer<") != std::string::npos);   // axis titles
  CHECK(svg.find(">-1.2<") != std::string::npos);    // the colour bar spans +-max|v|
  CHECK(viz::diverging_colour(0) == "#f7f7f7");
  CHECK(viz::diverging_colour(-1) == "#2166ac");
  CHECK(viz::diverging_colour(5) == "#b2182b");
  // 1-D sweeps draw as one column.
  pp::SweepResult one = s;
  one.axes = {"layer"};
  one.labels = {{"0", "1", "2"}};
  one.values = pp::Tensor::from_vector({3}, {1, 2, 3});
  CHECK(count(viz::heatmap_svg(one), "class=\"cell") == 3);
}

TEST_CASE("heatmap of a 3-D sweep: reduce an axis or fix an index; tokens on the position axis", "[viz]") {
  pp::SweepResult s;
  s.title = "z";
  s.metric = "logit difference";
  s.axes = {"layer", "position", "head"};
  s.labels = {{"0", "1"}, {"0", "1", "2"}, {"0", "1"}};
  std::vector<float> v;
  for (int i = 0; i < 12; ++i) v.push_back(static_cast<float>(i % 2 ? -i : i));
  s.values = pp::Tensor::from_vector({2, 3, 2}, v);
  viz::HeatmapOptions o;
  pp::SweepResult sum = viz::reduce_sweep(s, o);  // default: over heads, by sum
  CHECK(sum.axes == std::vector<std::string>{"layer", "position"});
  CHECK(sum.values.shape() == pp::Shape{2, 3});
  CHECK(sum.values.at({1, 2}) == 10.0f - 11.0f);
  o.reduce = viz::Reduce::MaxAbs;
  CHECK(viz::reduce_sweep(s, o).values.at({1, 2}) == -11.0f);
  o.reduce = viz::Reduce::Mean;
  CHECK(viz::reduce_sweep(s, o).values.at({0, 1}) == Approx(-0.5f));
  o.reduce_axis = "position";
  o.fixed_index = 2;
  pp::SweepResult fixed = viz::reduce_sweep(s, o);
  CHECK(fixed.axes == std::vector<std::string>{"layer", "head"});
  CHECK(fixed.values.at({1, 1}) == -11.0f);
  CHECK(fixed.title == "z (position 2)");
  o.fixed_index = 3;
  CHECK_THROWS_AS(viz::reduce_sweep(s, o), pp::InputError);
  o.reduce_axis = "nonesuch";
  CHECK_THROWS_WITH(viz::reduce_sweep(s, o), Catch::Contains("nonesuch") && Catch::Contains("position"));

  viz::HeatmapOptions tokens;
  tokens.position_labels = {"When", " Mary", " &"};
  std::string svg = viz::heatmap_svg(s, tokens);
  CHECK(count(svg, "class=\"cell") == 6);
  CHECK(svg.find(" Mary (1)") != std::string::npos);
  CHECK(svg.find(" &amp; (2)") != std::string::npos);  // escaped
  CHECK(svg.find("sum over head") != std::string::npos);
}

TEST_CASE("sweep CSV and JSON", "[viz]") {
  pp::SweepResult s = small_sweep();
  std::string csv = viz::sweep_csv(s);
  CHECK(count(csv, "\n") == 12 + 1);
  CHECK(csv.rfind("layer,head,value\n", 0) == 0);
  CHECK(csv.find("\n1,1,nan\n") != std::string::npos);
  CHECK(csv.find("\n2,mlp,0.50999999") != std::string::npos);

  auto j = nlohmann::json::parse(viz::sweep_json(s));
  CHECK(j["title"] == "senders");
  CHECK(j["metric"] == "logit difference");
  CHECK(j["axes"] == nlohmann::json({"layer", "head"}));
  CHECK(j["labels"][1][3] == "mlp");
  CHECK(j["shape"] == nlohmann::json({3, 4}));
  CHECK(j["values"][0][1].get<double>() == -0.9);
  CHECK(j["values"][1][1].is_null());
  CHECK(j["clean"].get<double>() == 2.5);
  CHECK(j["corrupted"].get<double>() == -1.0);
}

TEST_CASE("write_sweep chooses by extension", "[viz]") {
  pp::SweepResult s = small_sweep();
  auto dir = std::filesystem::temp_directory_path() / "pathpatch-test-viz";
  std::filesystem::create_directories(dir);
  for (const char* name : {"s.svg", "s.csv", "s.json", "s.png"}) {
    viz::write_sweep(s, dir / name);
    CHECK(std::filesystem::file_size(dir / name) > 100);
  }
  std::ifstream png(dir / "s.png", std::ios::binary);
  std::string magic(8, '\0');
  png.read(magic.data(), 8);
  CHECK(magic == std::string("\x89PNG\r\n\x1a\n", 8));
  CHECK_THROWS_WITH(viz::write_sweep(s, dir / "s.foo"), Catch::Contains("s.foo") && Catch::Contains(".csv"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("a real sender sweep draws as a heatmap and a circuit", "[viz]") {
  const pp::Model& m = pptest::model("gpt2");
  pp::Metric metric = pp::Metric::logit_diff({40, 41}, {50, 51});
  pp::SweepResult s = pp::sweep_senders(m, clean(), corrupt(), {pp::Receiver::logits()}, metric, {}, true);
  CHECK(count(viz::heatmap_svg(s), "class=\"cell") == 2 * 5);
  float max_abs = 0;
  for (int64_t i = 0; i < s.values.numel(); ++i) max_abs = std::max(max_abs, std::fabs(s.values.data()[i]));
  CHECK(visible_edges(viz::circuit_dot(s, max_abs)) == 1);
}

// Writes the pictures of docs/images (hidden: run with "[.render]"), from a 12-layer random model.
TEST_CASE("render the documentation's pictures", "[.render]") {
  pp::Model m = random_model(12, 12);
  const auto images = pptest::source_dir() / "docs" / "images";
  std::filesystem::create_directories(images);
  pp::Batch a = pp::Batch::from_rows({{5, 17, 23, 8, 41, 12, 30, 9}}), b = pp::Batch::from_rows({{5, 17, 23, 8, 44, 12, 30, 9}});

  pp::Result r = pp::run(m, {a, b}, through_a1, split_a1);
  viz::render_provenance(r, m, (images / "provenance.png").string(),
                         viz::DiagramOptions::for_inputs({a, b}, {"clean", "corrupted"}));

  pp::Metric metric = pp::Metric::logit_diff({30}, {31});
  pp::SweepResult s = pp::sweep_senders(m, a, b, {pp::Receiver::logits()}, metric, {}, true);
  viz::HeatmapOptions ho;
  ho.baseline = viz::Baseline::Clean;  // path patching's effect: the change from the clean run
  viz::write_sweep(s, images / "heatmap.png", ho);

  // The circuit: the eight largest effects.
  pp::SweepResult effects = viz::relative_to(s, viz::Baseline::Clean);
  std::vector<float> mags;
  for (int64_t i = 0; i < effects.values.numel(); ++i)
    if (!std::isnan(effects.values.data()[i])) mags.push_back(std::fabs(effects.values.data()[i]));
  std::sort(mags.rbegin(), mags.rend());
  viz::CircuitOptions co;
  co.baseline = viz::Baseline::Clean;
  viz::circuit_graph(s, mags.at(std::min<size_t>(7, mags.size() - 1)), co).render_file(images / "circuit.png");

  // For a look, not for the docs: the model at head granularity, and the uncollapsed provenance.
  viz::model_graph(m, viz::Granularity::Heads).render_file(std::filesystem::path(PP_BINARY_DIR) / "model-heads.png");
  auto o = viz::DiagramOptions::for_inputs({a, b}, {"clean", "corrupted"});
  o.collapse = false;
  viz::render_provenance(r, m, (std::filesystem::path(PP_BINARY_DIR) / "provenance-full.png").string(), o);
  pp::Result sender = pp::path_patch(m, a, b, {{0, 3}}, {pp::Receiver::logits()});
  viz::render_provenance(sender, m, (std::filesystem::path(PP_BINARY_DIR) / "provenance-sender.png").string(),
                         viz::DiagramOptions::for_inputs({a, b}, {"clean", "corrupted"}));
}

TEST_CASE("an attention pattern draws as a heatmap with tokens on both axes", "[viz]") {
  const pp::Tensor pattern = pp::Tensor::from_vector({3, 3}, {1, 0, 0, 0.5f, 0.5f, 0, 0.2f, 0.3f, 0.5f});
  pp::SweepResult s = viz::attention_sweep(pattern, {"When", " Mary", " &"}, "attention of head 1.1");
  CHECK(s.axes == std::vector<std::string>{"query", "key"});
  CHECK(s.labels[1][1] == " Mary (1)");
  viz::HeatmapOptions o;
  o.limit = 1;
  const std::string svg = viz::heatmap_svg(s, o);
  CHECK(count(svg, "class=\"cell") == 9);
  CHECK(svg.find(" &amp; (2)") != std::string::npos);
  CHECK(svg.find("attention of head 1.1") != std::string::npos);
  CHECK_THROWS_AS(viz::attention_sweep(pp::Tensor({2, 3}), {"a", "b"}, ""), pp::InputError);
  CHECK_THROWS_AS(viz::attention_sweep(pattern, {"a"}, ""), pp::InputError);
}
