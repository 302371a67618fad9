// viz/: the Graphviz wrapper, provenance / model / circuit diagrams, heatmaps, CSV and JSON. Everything
// is rendered in memory and checked for structure; "[.render]" (hidden) writes docs/images/*.png.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <unordered_set>

#include "helpers.hpp"
#include "models/checkpoint.hpp"
#include "pathpatch/prompts.hpp"
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

  // With the legend: one swatch per input, and one for steps several inputs reach with its words
  // beside it (not across its stripes).
  o.legend = true;
  viz::Digraph withlegend = viz::provenance_graph(r, m, o);
  CHECK(withlegend.node_count() == reachable_steps(r) + 4);
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
  // The README's three pictures, from the zoo's IOI model and its shipped prompts.
  const pp::Model m = pp::load_model(pptest::source_dir() / "models" / "zoo" / "ioi-llama");
  const auto images = pptest::source_dir() / "docs" / "images";
  std::filesystem::create_directories(images);
  const pp::PromptSet set = pp::read_prompts(pptest::source_dir() / "models" / "zoo" / "ioi-llama" / "eval.jsonl", m, 100);
  const pp::Batch a = set.clean.rows(0, 1), b = set.corrupted.rows(0, 1);

  // One path-patching experiment: head 2.1's corrupted effect on the logits alone.
  pp::Result r = pp::path_patch(m, a, b, {{2, 1}}, {pp::Receiver::logits()});
  viz::render_provenance(r, m, (images / "provenance.png").string(),
                         viz::DiagramOptions::for_inputs({a, b}, {"clean", "corrupted"}));

  // Every head (and MLP) -> logits over the 100 prompts.
  const pp::Metric metric = pp::Metric::logit_diff(set.answer, set.wrong);
  pp::SweepResult s = pp::sweep_senders(m, set.clean, set.corrupted, {pp::Receiver::logits()}, metric, {}, true);
  viz::HeatmapOptions ho;
  ho.baseline = viz::Baseline::Clean;  // path patching's effect: the change from the clean run
  viz::write_sweep(s, images / "heatmap.png", ho);

  // The circuit EAP-IG finds, as `pathpatch circuit --top 40 --draw` draws it.
  pp::EdgeGraph g = pp::edge_attribution(m, set.clean, set.corrupted, metric);
  g.select_top(40);
  viz::CircuitOptions co;
  co.metric = metric.name();
  viz::circuit_graph(g, "EAP-IG, 5 steps, top 40", co).render_file(images / "circuit.png");
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

namespace {

double number_after(const std::string& s, const std::string& key, double otherwise) {
  const size_t at = s.find(key);
  return at == std::string::npos ? otherwise : std::atof(s.c_str() + at + key.size());
}

// Every <text> of an SVG whose box, estimated from its font size alone (0.62 em per character,
// independent of the layout code's own measure), leaves the canvas by more than 2 units: the
// picture a browser would clip. Handles the two writers the CLI uses: the heatmaps' own
// (x/y or translate(...) rotate(...), text-anchor) and Graphviz's (one translate on the graph).
std::vector<std::string> text_outside_canvas(const std::string& svg) {
  const size_t open = svg.find("<svg");
  REQUIRE(open != std::string::npos);
  const std::string head = svg.substr(open, svg.find('>', open) - open);
  double W = 0, H = 0;
  if (head.find("viewBox=\"") != std::string::npos) {
    std::istringstream vb(head.substr(head.find("viewBox=\"") + 9));
    double x0, y0;
    vb >> x0 >> y0 >> W >> H;
  }
  REQUIRE(W > 0);
  REQUIRE(H > 0);
  double gx = 0, gy = 0;  // Graphviz: <g ... transform="scale(1 1) rotate(0) translate(4 292)">
  const size_t graph = svg.find("class=\"graph\"");
  if (graph != std::string::npos) {
    const std::string g = svg.substr(graph, svg.find('>', graph) - graph);
    const size_t t = g.find("translate(");
    if (t != std::string::npos) std::istringstream(g.substr(t + 10)) >> gx >> gy;
  }
  std::vector<std::string> out;
  for (size_t at = svg.find("<text"); at != std::string::npos; at = svg.find("<text", at + 5)) {
    const size_t close = svg.find('>', at), end = svg.find("</text>", close);
    const std::string tag = svg.substr(at, close - at);
    std::string body = svg.substr(close + 1, end - close - 1);
    size_t chars = 0;  // entities (&amp;) and UTF-8 continuation bytes count once
    for (size_t i = 0; i < body.size(); ++i) {
      if (body[i] == '&') i = std::min(body.find(';', i), body.size() - 1);
      if ((static_cast<unsigned char>(body[i]) & 0xC0) != 0x80) ++chars;
    }
    const double size = number_after(tag, "font-size=\"", 14);
    const double w = chars * size * (tag.find("bold") != std::string::npos ? 0.68 : 0.62);
    double x = number_after(tag, " x=\"", 0) + gx, y = number_after(tag, " y=\"", 0) + gy, angle = 0;
    const size_t tr = tag.find("translate(");
    if (tr != std::string::npos) {
      std::string args = tag.substr(tr + 10);
      std::replace(args.begin(), args.end(), ',', ' ');
      std::istringstream(args) >> x >> y;
      angle = number_after(tag, "rotate(", 0) * M_PI / 180;
    }
    const double from = tag.find("text-anchor=\"end\"") != std::string::npos      ? -w
                        : tag.find("text-anchor=\"middle\"") != std::string::npos ? -w / 2
                                                                                  : 0;
    // The baseline from `from` to `from + w` along the text's direction; glyphs one em above it.
    double lo_x = 1e30, hi_x = -1e30, lo_y = 1e30, hi_y = -1e30;
    for (double along : {from, from + w})
      for (double up : {0.0, -0.8 * size}) {
        const double px = x + along * std::cos(angle) - up * std::sin(angle);
        const double py = y + along * std::sin(angle) + up * std::cos(angle);
        lo_x = std::min(lo_x, px), hi_x = std::max(hi_x, px), lo_y = std::min(lo_y, py), hi_y = std::max(hi_y, py);
      }
    if (lo_x < -2 || hi_x > W + 2 || lo_y < -2 || hi_y > H + 2)
      out.push_back("'" + body + "' spans x " + std::to_string(lo_x) + ".." + std::to_string(hi_x) + ", y " +
                    std::to_string(lo_y) + ".." + std::to_string(hi_y) + " of " + std::to_string(W) + " x " +
                    std::to_string(H));
  }
  return out;
}

}  // namespace

TEST_CASE("no text leaves the canvas of any kind of picture the CLI writes", "[viz]") {
  auto check = [](const std::string& what, const std::string& svg) {
    INFO(what);
    const std::vector<std::string> outside = text_outside_canvas(svg);
    for (const std::string& o : outside) UNSCOPED_INFO(o);
    CHECK(outside.empty());
  };
  // The checker itself sees text that leaves the canvas.
  CHECK(text_outside_canvas("<svg viewBox=\"0 0 100 50\"><text x=\"90\" y=\"20\" font-size=\"11\">overflowing</text></svg>")
            .size() == 1);
  CHECK(text_outside_canvas("<svg viewBox=\"0 0 100 50\"><text transform=\"translate(5,40) rotate(-45)\" "
                            "text-anchor=\"end\" font-size=\"11\">a long tick label</text></svg>")
            .size() == 1);

  check("layer x head", viz::heatmap_svg(small_sweep()));
  pp::SweepResult titled = small_sweep();
  titled.title = "senders -> q:2.0, q:2.1, k:2.0, k:2.1, v:2.0, v:2.1 of a rather long experiment name";
  titled.metric = "change in normalised logit difference from clean";
  check("a long title", viz::heatmap_svg(titled));

  // Positions: few with long tokens (rotated ticks), and 512 (thinned ticks).
  for (int64_t T : {6, 40, 512}) {
    pp::SweepResult s;
    s.title = "resid_pre";
    s.metric = "logit difference";
    s.axes = {"layer", "position"};
    s.labels = {{"0", "1", "2", "11"}, {}};
    std::vector<std::string> tokens;
    for (int64_t t = 0; t < T; ++t) {
      s.labels[1].push_back(std::to_string(t));
      tokens.push_back(t % 3 == 0 ? " internationalisation" : t % 3 == 1 ? " Mary" : "&<>");
    }
    std::vector<float> v(static_cast<size_t>(4 * T));
    for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(static_cast<float>(i)) * 1234.5f;
    s.values = pp::Tensor::from_vector({4, T}, v);
    viz::HeatmapOptions o;
    o.position_labels = tokens;
    check(std::to_string(T) + " positions", viz::heatmap_svg(s, o));
  }
  // The logit lens's readings, an attention pattern with tokens on both axes, a one-run sweep.
  pp::SweepResult lens;
  lens.title = "logit lens";
  lens.metric = "p(next token)";
  lens.axes = {"reading", "position"};
  lens.labels = {{"resid_pre0", "resid_pre11", "resid_post11"}, {"0", "1"}};
  lens.values = pp::Tensor::from_vector({3, 2}, {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, std::nanf("")});
  check("logit lens", viz::heatmap_svg(lens));
  std::vector<std::string> words;
  std::vector<float> pattern;
  for (int q = 0; q < 30; ++q) {
    words.push_back(q % 2 ? " Wonderland" : " a");
    for (int k = 0; k < 30; ++k) pattern.push_back(k <= q ? 1.0f / (q + 1) : 0.0f);
  }
  viz::HeatmapOptions attention;
  attention.limit = 1;
  check("attention", viz::heatmap_svg(viz::attention_sweep(pp::Tensor::from_vector({30, 30}, pattern), words,
                                                           "attention of head 11.11"),
                                      attention));
  pp::SweepResult one_run = small_sweep();
  one_run.corrupted = std::nanf("");
  check("one run", viz::heatmap_svg(one_run));

  // Graphviz's pictures: a circuit, the provenance of a run, the model.
  const pp::Model m = random_model(2, 4);
  const pp::Batch a = pp::Batch::from_rows({{3, 14, 15, 9, 26}}), b = pp::Batch::from_rows({{3, 14, 15, 9, 27}});
  check("circuit", viz::circuit_graph(small_sweep(), 0.1f).render("svg"));
  const pp::Result r = pp::run(m, {a, b}, through_a1, split_a1);
  check("provenance",
        viz::provenance_graph(r, m, viz::DiagramOptions::for_inputs({a, b}, {"clean", "corrupted"})).render("svg"));
  check("model", viz::model_graph(m, viz::Granularity::Heads).render("svg"));
}
