// Pictures that are not a result's own: the model's DAG and circuits from explicit edges.
#include "convert.hpp"
#include "viz/diagrams.hpp"

namespace pathpatch::python {

void bind_viz(py::module_& m) {
  m.def("model_graph",
        [](const Model& model, const std::string& granularity, const py::object& path, bool left_to_right,
           const std::string& format) {
          viz::Granularity g = viz::Granularity::Layers;
          if (granularity == "heads") g = viz::Granularity::Heads;
          else if (granularity == "qkv") g = viz::Granularity::QKV;
          else if (granularity != "layers")
            throw InputError("granularity '" + granularity + "': expected 'layers', 'heads' or 'qkv'");
          return draw(viz::model_graph(model, g, left_to_right), path, format);
        },
        py::arg("model"), py::arg("granularity") = "layers", py::arg("path") = py::none(), py::kw_only(),
        py::arg("left_to_right") = false, py::arg("format") = "svg",
        "The model's DAG of nodes ('layers'), with each attention's heads ('heads') or their q, k, v inputs ('qkv'): "
        "SVG text (or `format`: 'png' bytes, 'dot' source), or written to `path`.");

  m.def("circuit",
        [](const std::vector<std::tuple<std::string, std::string, float>>& edges, float threshold,
           const py::object& path, const std::string& metric, bool left_to_right, const std::string& format) {
          std::vector<viz::WeightedEdge> e;
          for (const auto& [from, to, effect] : edges) e.push_back({from, to, effect});
          viz::CircuitOptions o;
          o.metric = metric;
          o.left_to_right = left_to_right;
          return draw(viz::circuit_graph(e, threshold, o), path, format);
        },
        py::arg("edges"), py::arg("threshold") = 0.0f, py::arg("path") = py::none(), py::kw_only(),
        py::arg("metric") = "", py::arg("left_to_right") = false, py::arg("format") = "svg",
        R"(A circuit from explicit (sender, receiver, effect) edges, e.g. ("a0.head3", "a2.head1.k", 1.2).

    Edges with |effect| < threshold are left out. SVG text, or written to `path`.)");

  m.def("output_formats", &viz::output_formats, "The file formats this Graphviz can write (svg, png, pdf, ...).");
}

}  // namespace pathpatch::python
