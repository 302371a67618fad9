// Gradients, attribution patching, and circuits from edge attribution (pathpatch/attribution.hpp,
// pathpatch/circuits.hpp).
#include "convert.hpp"
#include "viz/diagrams.hpp"

namespace pathpatch::python {

namespace {

std::pair<int, int> to_edge(const EdgeGraph& g, const py::handle& obj) {
  if (py::isinstance<py::str>(obj)) return g.find_edge(obj.cast<std::string>());
  throw InputError("edge: expected a name such as 'a0.h2->a1.h1<k>', got " + std::string(py::repr(obj)));
}

}  // namespace

void bind_attribution(py::module_& m) {
  py::class_<Gradients>(m, "Gradients", R"(Gradients of a metric with respect to named activations.

    g["z1"] (or g.gradient("blocks.1.attn.hook_z")): d metric / d activation, shaped like it.
    g.value: the metric (the batch mean that was differentiated); g.rows: each row's value.)")
      .def_readonly("value", &Gradients::value)
      .def_readonly("rows", &Gradients::rows)
      .def_readonly("saved_bytes", &Gradients::saved_bytes, "What the forward kept for the backward, in bytes")
      .def("gradient", [](const Gradients& g, const std::string& name) { return to_numpy(g.gradient(name)); },
           py::arg("name"))
      .def("__getitem__", [](const Gradients& g, const std::string& name) { return to_numpy(g.gradient(name)); })
      .def("value_of", [](const Gradients& g, const std::string& name) { return to_numpy(g.value_of(name)); },
           py::arg("name"), "The activation itself (gradients(..., values=True))")
      .def("keys", [](const Gradients& g) {
        std::vector<std::string> k;
        for (const auto& kv : g.grads) k.push_back(kv.first);
        return k;
      })
      .def("__len__", [](const Gradients& g) { return g.grads.size(); })
      .def("__contains__", [](const Gradients& g, const std::string& name) {
        return g.grads.count(name) > 0 || g.grads.count(expand_activation_name(name)) > 0;
      })
      .def("__repr__", [](const Gradients& g) {
        return "<Gradients of " + std::to_string(g.grads.size()) + " activations, value " + std::to_string(g.value) + ">";
      });

  m.def("gradients",
        [](const ModelPtr& model, const py::handle& input, const Metric& metric, const py::handle& names,
           const py::object& references, bool values) {
          Batch b = to_batch(*model, input, "input");
          GradientOptions o;
          o.values = values;
          if (!references.is_none()) {
            py::sequence refs = py::reinterpret_borrow<py::sequence>(references);
            if (py::len(refs) != 2) throw InputError("references: expected (clean, corrupted)");
            o.references = {to_batch(*model, refs[0], "clean reference"), to_batch(*model, refs[1], "corrupted reference")};
          }
          const std::vector<std::string> wanted = to_strings(names, "names");
          const Metric fit = fitted(metric, b.size);
          py::gil_scoped_release nogil;
          return gradients(*model, b, fit, wanted, o);
        },
        py::arg("model"), py::arg("input"), py::arg("metric"), py::arg("names"), py::kw_only(),
        py::arg("references") = py::none(), py::arg("values") = false,
        R"(d (the metric's batch mean) / d each named activation: TransformerLens's backward hooks in one call.

    names: full or short names ('z1', 'blocks.0.hook_resid_pre'), or a site for every layer ('z',
        'resid_pre', 'pattern'; 'embed', 'pos_embed', 'ln_final').
    references: (clean, corrupted) for metrics measured against them (KL, normalized_logit_diff).
    Built-in metrics only: a custom metric has no derivative.

    >>> g = pathpatch.gradients(model, clean, pathpatch.Metric.logit_diff(answer, wrong), ["z"])
    >>> g["z1"].shape   # (batch, pos, n_heads, d_head))");

  m.def("attribution_patching",
        [](const ModelPtr& model, const py::handle& clean, const py::handle& corrupted, const Metric& metric,
           const py::handle& sites, const py::handle& layers, const py::handle& positions, int k, bool together,
           const std::string& direction) {
          Batch c = to_batch(*model, clean, "clean"), x = to_batch(*model, corrupted, "corrupted");
          Sites s = to_sites(sites, layers, positions, k, together);
          PatchingOptions o;
          o.direction = to_direction(direction);
          const Metric fit = fitted(metric, c.size);
          std::map<std::string, SweepResult> out;
          {
            py::gil_scoped_release nogil;
            out = attribution_patching(*model, c, x, s, fit, o);
          }
          for (const auto& [name, sweep] : out) warn(sweep.warnings);
          return out;
        },
        py::arg("model"), py::arg("clean"), py::arg("corrupted"), py::arg("metric"), py::kw_only(),
        py::arg("sites") = std::vector<std::string>{"resid_pre", "attn_out", "mlp_out"}, py::arg("layers") = py::none(),
        py::arg("positions") = "all", py::arg("k") = 1, py::arg("together") = false, py::arg("direction") = "denoise",
        R"(Attribution patching (AtP): activation_patching's sweeps to first order, from one backward.

    The same arguments, keys, axes and per-example rows as activation_patching; each value is the
    unpatched run's plus gradient . (patched value - unpatched value) at the cell's site.

    >>> quick = pathpatch.attribution_patching(model, clean, corrupt, metric, sites=["z"], positions="each")
    >>> exact = pathpatch.activation_patching(model, clean, corrupt, metric, sites=["z"], positions="each"))");

  py::class_<EdgeGraph>(m, "EdgeGraph", R"(EAP-IG's graph of a model: sources input, a{L}.h{H}, m{L}; destinations
each head's q, k, v inputs (a{L}.h{H}<q>), m{L}, logits. Scores from edge_attribution; a circuit
from select_top / select_threshold / select_greedy; to_json / from_json in EAP-IG's format.)")
      .def_static("of", [](const ModelPtr& model) { return EdgeGraph::of(*model); }, py::arg("model"))
      .def_static("from_json",
                  [](const ModelPtr& model, const std::string& text) { return EdgeGraph::from_json(*model, text, "json"); },
                  py::arg("model"), py::arg("text"))
      .def("to_json", &EdgeGraph::to_json)
      .def_property_readonly("scores", [](const EdgeGraph& g) { return to_numpy(g.scores()); },
                             "[sources, destinations] (0 where no edge)")
      .def_property_readonly("sources", [](const EdgeGraph& g) {
        std::vector<std::string> v;
        for (int s = 0; s < g.n_sources(); ++s) v.push_back(g.source(s));
        return v;
      })
      .def_property_readonly("destinations", [](const EdgeGraph& g) {
        std::vector<std::string> v;
        for (int d = 0; d < g.n_destinations(); ++d) v.push_back(g.destination(d));
        return v;
      })
      .def_property_readonly("n_edges", &EdgeGraph::n_edges)
      .def_property_readonly("circuit_edges", &EdgeGraph::circuit_edges)
      .def_property_readonly("circuit_nodes", &EdgeGraph::circuit_nodes)
      .def("edges", [](const EdgeGraph& g, bool circuit_only) {
        std::vector<std::tuple<std::string, float, bool>> out;
        for (const auto& [s, d] : g.edges_by_score())
          if (!circuit_only || g.in_circuit(s, d)) out.emplace_back(g.edge_name(s, d), g.score(s, d), g.in_circuit(s, d));
        return out;
      }, py::arg("circuit_only") = false, "(name, score, in_circuit) for every edge, largest |score| first")
      .def("score", [](const EdgeGraph& g, const py::handle& e) { auto [s, d] = to_edge(g, e); return g.score(s, d); },
           py::arg("edge"))
      .def("in_circuit", [](const EdgeGraph& g, const py::handle& e) { auto [s, d] = to_edge(g, e); return g.in_circuit(s, d); },
           py::arg("edge"))
      .def("set_in_circuit", [](EdgeGraph& g, const py::handle& e, bool on) {
        auto [s, d] = to_edge(g, e);
        g.set_in_circuit(s, d, on);
      }, py::arg("edge"), py::arg("on") = true, "Add (or remove) one edge; call prune() after editing")
      .def("select_top", &EdgeGraph::select_top, py::arg("n"), py::arg("absolute") = true)
      .def("select_threshold", &EdgeGraph::select_threshold, py::arg("threshold"), py::arg("absolute") = true)
      .def("select_greedy", &EdgeGraph::select_greedy, py::arg("n"), py::arg("absolute") = true)
      .def("select_all", &EdgeGraph::select_all)
      .def("prune", &EdgeGraph::prune)
      .def("draw", [](const EdgeGraph& g, const py::object& path, const std::string& scored_by, const std::string& metric,
                      const std::string& format) {
        viz::CircuitOptions o;
        o.metric = metric;
        return draw(viz::circuit_graph(g, scored_by, o), path, format);
      }, py::arg("path") = py::none(), py::kw_only(), py::arg("scored_by") = "edge scores", py::arg("metric") = "",
         py::arg("format") = "svg", "The circuit: to `path` (format from its extension), or rendered in `format`")
      .def("_repr_svg_", [](const EdgeGraph& g) {
        return draw(viz::circuit_graph(g, "edge scores"), py::none(), "svg");
      })
      .def("__repr__", [](const EdgeGraph& g) {
        return "<EdgeGraph: " + std::to_string(g.n_edges()) + " edges, " + std::to_string(g.circuit_edges()) +
               " in the circuit>";
      });

  m.def("edge_attribution",
        [](const ModelPtr& model, const py::handle& clean, const py::handle& corrupted, const Metric& metric,
           const std::string& method, int steps, const py::object& progress) {
          Batch c = to_batch(*model, clean, "clean"), x = to_batch(*model, corrupted, "corrupted");
          EdgeAttributionOptions o;
          if (method == "eap") o.method = EdgeMethod::Eap;
          else if (method == "eap-ig-activations") o.method = EdgeMethod::EapIgActivations;
          else if (method != "eap-ig")
            throw InputError("method '" + method + "': expected 'eap-ig', 'eap' or 'eap-ig-activations'");
          o.steps = steps;
          o.progress = progress_callback(progress);
          const Metric fit = fitted(metric, c.size);
          py::gil_scoped_release nogil;
          return edge_attribution(*model, c, x, fit, o);
        },
        py::arg("model"), py::arg("clean"), py::arg("corrupted"), py::arg("metric"), py::kw_only(),
        py::arg("method") = "eap-ig", py::arg("steps") = 5, py::arg("progress") = py::none(),
        R"(Every edge's EAP or EAP-IG score (EAP-IG's conventions: corrupted - clean, divided by the rows).

    >>> g = pathpatch.edge_attribution(model, clean, corrupt, metric)     # EAP-IG, 5 steps
    >>> g.select_top(30); pathpatch.faithfulness(model, clean, corrupt, g, metric).faithfulness)");

  py::class_<Faithfulness>(m, "Faithfulness", "A circuit's run against the clean and corrupted ones")
      .def_readonly("circuit", &Faithfulness::circuit)
      .def_readonly("clean", &Faithfulness::clean)
      .def_readonly("corrupted", &Faithfulness::corrupted)
      .def_readonly("faithfulness", &Faithfulness::faithfulness, "(circuit - corrupted) / (clean - corrupted)")
      .def_readonly("circuit_rows", &Faithfulness::circuit_rows)
      .def_readonly("edges", &Faithfulness::edges)
      .def_readonly("nodes", &Faithfulness::nodes)
      .def("__repr__", [](const Faithfulness& f) {
        return "<Faithfulness " + std::to_string(f.faithfulness) + ": circuit " + std::to_string(f.circuit) + ", clean " +
               std::to_string(f.clean) + ", corrupted " + std::to_string(f.corrupted) + ", " + std::to_string(f.edges) +
               " edges>";
      });

  m.def("faithfulness",
        [](const ModelPtr& model, const py::handle& clean, const py::handle& corrupted, const EdgeGraph& circuit,
           const Metric& metric, const std::string& ablation, const py::object& mean_over,
           std::shared_ptr<Cache> cache) {
          Batch c = to_batch(*model, clean, "clean"), x = to_batch(*model, corrupted, "corrupted");
          if (ablation != "corrupted" && ablation != "mean")
            throw InputError("ablation '" + ablation + "': expected 'corrupted' or 'mean'");
          Batch over = mean_over.is_none() ? x : to_batch(*model, mean_over, "mean_over");
          const Metric fit = fitted(metric, c.size);
          py::gil_scoped_release nogil;
          if (ablation == "mean") return mean_ablated_faithfulness(*model, c, x, over, circuit, fit);
          return faithfulness(*model, c, x, circuit, fit, std::move(cache));
        },
        py::arg("model"), py::arg("clean"), py::arg("corrupted"), py::arg("circuit"), py::arg("metric"), py::kw_only(),
        py::arg("ablation") = "corrupted", py::arg("mean_over") = py::none(), py::arg("cache") = nullptr,
        R"(The clean run with every edge outside the circuit patched: from the corrupted run, exactly (path
    patching), or (ablation='mean') carrying its source's mean over `mean_over`'s rows and positions
    (default: the corrupted input); then `corrupted` is the run with every edge so ablated.)");

  m.def("exact_edge_scores",
        [](const ModelPtr& model, const py::handle& clean, const py::handle& corrupted, const EdgeGraph& graph,
           const py::handle& edges, const Metric& metric, std::shared_ptr<Cache> cache, const py::object& progress) {
          Batch c = to_batch(*model, clean, "clean"), x = to_batch(*model, corrupted, "corrupted");
          std::vector<std::pair<int, int>> list;
          for (const auto& e : py::reinterpret_borrow<py::iterable>(edges)) list.push_back(to_edge(graph, e));
          PatchingOptions o;
          o.cache = std::move(cache);
          o.progress = progress_callback(progress);
          const Metric fit = fitted(metric, c.size);
          py::gil_scoped_release nogil;
          return exact_edge_scores(*model, c, x, graph, list, fit, o);
        },
        py::arg("model"), py::arg("clean"), py::arg("corrupted"), py::arg("graph"), py::arg("edges"), py::arg("metric"),
        py::kw_only(), py::arg("cache") = nullptr, py::arg("progress") = py::none(),
        "Each edge patched alone from the corrupted run, exactly: the metric's change (ACDC's test, planned together)");
}

}  // namespace pathpatch::python
