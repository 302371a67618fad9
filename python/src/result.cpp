#include "result.hpp"

#include "viz/diagrams.hpp"

namespace pathpatch::python {

namespace {

viz::DiagramOptions diagram_options(const PyResult& r, const py::object& input_names, bool collapse, bool show_shapes,
                                    bool show_cache, bool edge_labels, bool left_to_right, bool legend) {
  viz::DiagramOptions o = viz::DiagramOptions::for_inputs(r.inputs, to_strings(input_names, "input_names"));
  o.collapse = collapse;
  o.show_shapes = show_shapes;
  o.show_cache = show_cache;
  o.edge_labels = edge_labels;
  o.left_to_right = left_to_right;
  o.legend = legend;
  return o;
}

}  // namespace

void bind_result(py::module_& m) {
  py::class_<PyResult>(m, "Result", R"(What a run computed. Arrays are read-only views of the engine's buffers (no copy).

    logits [B, T, V], hidden (ln_final's output) [B, T, D], stats (the work done), probes, and
    provenance(): the computation the run did, drawn with Graphviz.)")
      .def_property_readonly("logits", [](const PyResult& r) { return to_numpy(r.r.logits); },
                             "[B, T, V] (None if the run was asked for no logits).")
      .def_property_readonly("hidden", [](const PyResult& r) { return to_numpy(r.r.hidden); },
                             "ln_final's output [B, T, D].")
      .def_property_readonly("stats", [](const PyResult& r) { return stats_dict(r.r.stats); },
                             "The work done: node_visits, steps, computed, cache_hits, flops, flops_saved, seconds by "
                             "kind of step, ...")
      .def_property_readonly("probes",
                             [](const PyResult& r) {
                               py::list out;
                               for (const ProbeRecord& p : r.r.probes)
                                 out.append(py::make_tuple(p.label, p.activation, to_numpy(p.value)));
                               return out;
                             },
                             "One (label, activation, value) per computed instance of each probed activation.")
      .def_property_readonly("warnings", [](const PyResult& r) { return r.r.warnings; },
                             "What may not be what was meant (also issued as PatchingWarning): a rule that changed "
                             "nothing, ...")
      .def("probe", [](const PyResult& r, const std::string& label) { return to_numpy(r.r.probe(label)); },
           py::arg("label"),
           "The value a probe recorded, by its label or its activation's name (full or short); NameError if none, "
           "InputError if the activation was computed on several paths (read `probes` then).")
      .def("provenance",
           [](const PyResult& r, const py::object& path, const std::string& format, const py::object& input_names,
              bool collapse, bool show_shapes, bool show_cache, bool edge_labels, bool left_to_right,
              bool legend) -> py::object {
             viz::DiagramOptions o = diagram_options(r, input_names, collapse, show_shapes, show_cache, edge_labels,
                                                     left_to_right, legend);
             if (!path.is_none()) {
               const std::string file = py::str(path);
               viz::render_provenance(r.r, *r.model, file, o);
               return py::none();
             }
             return rendered(viz::render_provenance(r.r, *r.model, format, o), format);
           },
           py::arg("path") = py::none(), py::kw_only(), py::arg("format") = "svg", py::arg("input_names") = py::none(),
           py::arg("collapse") = true, py::arg("show_shapes") = false, py::arg("show_cache") = false,
           py::arg("edge_labels") = true, py::arg("left_to_right") = false, py::arg("legend") = true,
           R"(The run's provenance DAG: every step it computed, coloured by the input it reads.

    With a path ("paths.svg", ".png", ".pdf", ".dot") the file is written (format from its extension);
    without, the rendering in `format` is returned (str for svg/dot, bytes for images).)");
}

}  // namespace pathpatch::python
