// Metrics, activation patching, path patching and the sweeps' results.
#include <optional>

#include "convert.hpp"
#include "pathpatch/analysis.hpp"
#include "result.hpp"
#include "viz/diagrams.hpp"
#include "viz/heatmap.hpp"

namespace pathpatch::python {

std::vector<int32_t> to_tokens(const py::handle& obj, const std::string& what) {
  std::vector<int> v = to_ints(obj, what);
  return {v.begin(), v.end()};
}

// One answer (or wrong) token given for a batch of several rows serves every row.
Metric fitted(Metric metric, int64_t rows) {
  for (auto* ids : {&metric.answer, &metric.wrong})
    if (ids->size() == 1 && rows > 1) ids->assign(rows, (*ids)[0]);
  return metric;
}

namespace {

// The user's Python function of the logits [B, P, V] as the engine's MetricFn: one value per row,
// or one value for the batch (then every row gets it).
MetricFn python_metric(const py::function& fn) {
  std::shared_ptr<py::object> held = share(fn);
  return [held](const Tensor& logits) {
    py::gil_scoped_acquire gil;
    py::object r = (*held)(to_numpy(logits));
    py::array values;
    try {
      values = py::module_::import("numpy").attr("asarray")(r, "float32").attr("ravel")();
    } catch (const py::error_already_set&) {
      throw InputError("the metric function returned " + std::string(py::repr(r)) +
                       "; it must return a number or one number per batch row");
    }
    const auto* p = static_cast<const float*>(values.data());
    std::vector<float> out(p, p + values.size());
    if (out.size() == 1) out.assign(static_cast<size_t>(logits.size(0)), out[0]);
    return out;
  };
}

std::optional<int> parse_int(std::string_view s) {
  if (s.empty() || s.size() > 9) return std::nullopt;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

// "a0.head3" (or EAP-IG's "a0.h3") is head 3 of layer 0; "f2", "f2.head" (or "m2") is layer 2's MLP.
Sender parse_sender(const std::string& s) {
  if (auto n = PathName::parse(s)) {
    if (n->kind == PathName::Head) return Sender{n->layer, n->head};
    if ((n->kind == PathName::Residual || n->kind == PathName::Sublayer) && n->block == Block::Mlp)
      return Sender{n->layer, -1};
  }
  if (s.size() > 1 && s[0] == 'm')
    if (auto l = parse_int(std::string_view(s).substr(1))) return Sender{*l, -1};
  if (const size_t dot = s.find(".h"); s.size() > 1 && s[0] == 'a' && dot != std::string::npos) {
    auto l = parse_int(std::string_view(s).substr(1, dot - 1));
    auto h = parse_int(std::string_view(s).substr(dot + 2));
    if (l && h) return Sender{*l, *h};
  }
  throw InputError("sender '" + s + "': expected a head ('a0.head3' or 'a0.h3') or an MLP ('f2' or 'm2')");
}

// " at -1, -2" for a repr; "" for every position.
std::string at_positions(const std::vector<int>& positions) {
  std::string at;
  for (int p : positions) at.append(at.empty() ? " at " : ", ").append(std::to_string(p));
  return at;
}

Sender to_sender(const py::handle& obj) {
  if (py::isinstance<Sender>(obj)) return obj.cast<Sender>();
  if (py::isinstance<py::str>(obj)) return parse_sender(obj.cast<std::string>());
  if (py::isinstance<py::tuple>(obj) && (py::len(obj) == 2 || py::len(obj) == 3)) {
    py::tuple t = py::reinterpret_borrow<py::tuple>(obj);
    if (py::isinstance<py::int_>(t[0]) && (t[1].is_none() || py::isinstance<py::int_>(t[1])))
      return Sender{t[0].cast<int>(), t[1].is_none() ? -1 : t[1].cast<int>(),
                    py::len(obj) == 3 ? t[2].cast<std::vector<int>>() : std::vector<int>{}};
  }
  throw InputError("sender: expected 'a0.head3', 'f2', (layer, head[, positions]), (layer, None) for the MLP or a "
                   "Sender, got " + std::string(py::repr(obj)));
}

Receiver to_receiver(const py::handle& obj) {
  if (py::isinstance<Receiver>(obj)) return obj.cast<Receiver>();
  if (py::isinstance<py::str>(obj)) {
    const std::string s = obj.cast<std::string>();
    if (s == "logits") return Receiver::logits();
    if (auto n = PathName::parse(s)) {
      if (n->kind == PathName::Head) return Receiver{Receiver::Input, n->layer, n->head};
      if (n->kind == PathName::HeadInput) return Receiver{Receiver::kind_named(role_name(n->role)), n->layer, n->head};
      if (n->kind == PathName::HeadInputPosition)
        return Receiver{Receiver::kind_named(role_name(n->role)), n->layer, n->head, {n->pos}};
    }
    throw InputError("receiver '" + s + "': expected 'logits', a head input ('a2.head1.q', '.k', '.v'), one position "
                     "of it ('a2.head1.q.pos14') or a head ('a2.head1': its q, k and v)");
  }
  if (py::isinstance<py::tuple>(obj) && (py::len(obj) == 3 || py::len(obj) == 4)) {
    py::tuple t = py::reinterpret_borrow<py::tuple>(obj);
    if (py::isinstance<py::str>(t[0]) && py::isinstance<py::int_>(t[1]) && py::isinstance<py::int_>(t[2]))
      return Receiver{Receiver::kind_named(t[0].cast<std::string>()), t[1].cast<int>(), t[2].cast<int>(),
                      py::len(obj) == 4 ? t[3].cast<std::vector<int>>() : std::vector<int>{}};
  }
  throw InputError("receiver: expected 'logits', 'a2.head1.q', ('q', layer, head[, positions]) or a Receiver, got " +
                   std::string(py::repr(obj)));
}

template <class T, class F>
std::vector<T> list_of(const py::handle& obj, F convert) {
  if (py::isinstance<py::str>(obj) || py::isinstance<py::tuple>(obj) || py::isinstance<T>(obj)) return {convert(obj)};
  std::vector<T> out;
  for (const auto& item : py::reinterpret_borrow<py::iterable>(obj)) out.push_back(convert(item));
  return out;
}

}  // namespace

Direction to_direction(const std::string& direction) {
  if (direction == "denoise") return Direction::Denoise;
  if (direction == "noise") return Direction::Noise;
  throw InputError("direction '" + direction + "': expected 'denoise' or 'noise'");
}

Sites to_sites(const py::handle& names, const py::handle& layers, const py::handle& positions, int k, bool together) {
  Sites s;
  s.names = to_strings(names, "sites");
  s.layers = to_ints(layers, "layers");
  s.k = k;
  if (py::isinstance<py::str>(positions)) {
    const std::string p = positions.cast<std::string>();
    if (p == "all") s.positions = SitePositions::All;
    else if (p == "each") s.positions = SitePositions::Each;
    else if (p == "last") s.positions = SitePositions::Last;
    else if (p == "last_k") s.positions = SitePositions::LastK;
    else throw InputError("positions '" + p + "': expected 'all', 'each', 'last', 'last_k' (with k=) or a list of positions");
  } else {
    s.custom = to_ints(positions, "positions");
    s.positions = together ? SitePositions::CustomConstant : SitePositions::Custom;
  }
  return s;
}

namespace {

viz::Baseline to_baseline(const std::string& b) {
  if (b == "none") return viz::Baseline::None;
  if (b == "clean") return viz::Baseline::Clean;
  if (b == "corrupted") return viz::Baseline::Corrupted;
  throw InputError("baseline '" + b + "': expected 'none', 'clean' or 'corrupted'");
}

viz::HeatmapOptions heatmap_options(const std::string& baseline, const std::string& reduce_axis, const std::string& reduce,
                                    int index, const py::object& position_labels, float limit, bool annotate, int cell,
                                    const std::string& title) {
  viz::HeatmapOptions o;
  o.baseline = to_baseline(baseline);
  o.reduce_axis = reduce_axis;
  if (reduce == "sum") o.reduce = viz::Reduce::Sum;
  else if (reduce == "mean") o.reduce = viz::Reduce::Mean;
  else if (reduce == "maxabs") o.reduce = viz::Reduce::MaxAbs;
  else throw InputError("reduce '" + reduce + "': expected 'sum', 'mean' or 'maxabs'");
  o.fixed_index = index;
  o.position_labels = to_strings(position_labels, "position_labels");
  o.limit = limit;
  o.annotate = annotate;
  o.cell = cell;
  o.title = title;
  return o;
}

struct Common {
  std::shared_ptr<Cache> cache;
  Progress progress;
};

Common common(std::shared_ptr<Cache> cache, const py::object& progress) {
  return {std::move(cache), progress_callback(progress)};
}

PathPatchingOptions path_options(const Common& c, bool mlps_on_path, size_t chunk) {
  PathPatchingOptions o;
  o.mlps_on_path = mlps_on_path;
  o.cache = c.cache;
  o.progress = c.progress;
  o.chunk = chunk;
  return o;
}

void bind_sweep(py::module_& m) {
  py::class_<SweepResult>(m, "Sweep", R"(A sweep's numbers with their axes: values[i, j, ...] along axes (e.g. ("layer", "head")).

    values is a read-only float32 array viewing the engine's buffer (the batch's mean), per_example
    the same per batch row; labels[a] are axis a's tick labels; clean / corrupted are the metric on
    the unpatched runs. Shown as a heatmap in Jupyter;
    heatmap(), circuit(), save(), csv(), json(), to_pandas() for the rest.)")
      .def_property_readonly("values", [](const SweepResult& s) { return to_numpy(s.values); })
      .def_readonly("axes", &SweepResult::axes)
      .def_readonly("labels", &SweepResult::labels)
      .def_readonly("title", &SweepResult::title)
      .def_readonly("metric", &SweepResult::metric)
      .def_property_readonly("per_example", [](const SweepResult& s) { return to_numpy(s.per_example); },
                             "The metric on each batch row: values' shape plus one axis of B rows (values is "
                             "their mean). NaN where no experiment ran.")
      .def_readonly("clean", &SweepResult::clean, "The metric on the clean run (the batch's mean).")
      .def_readonly("corrupted", &SweepResult::corrupted, "The metric on the corrupted run (the batch's mean).")
      .def_readonly("clean_rows", &SweepResult::clean_rows, "The metric on the clean run, per batch row.")
      .def_readonly("corrupted_rows", &SweepResult::corrupted_rows, "The metric on the corrupted run, per batch row.")
      .def_readonly("warnings", &SweepResult::warnings, "What may not be what was meant (also issued as PatchingWarning).")
      .def_property_readonly("stats", [](const SweepResult& s) { return stats_dict(s.stats); })
      .def_property_readonly("shape", [](const SweepResult& s) { return s.values.shape(); })
      .def("relative_to", [](const SweepResult& s, const std::string& b) { return viz::relative_to(s, to_baseline(b)); },
           py::arg("baseline"), "The values minus the clean or corrupted metric ('clean', 'corrupted', 'none').")
      .def("heatmap",
           [](const SweepResult& s, const py::object& path, const std::string& baseline, const std::string& reduce_axis,
              const std::string& reduce, int index, const py::object& position_labels, float limit, bool annotate,
              int cell, const std::string& title) -> py::object {
             viz::HeatmapOptions o = heatmap_options(baseline, reduce_axis, reduce, index, position_labels, limit,
                                                     annotate, cell, title);
             if (path.is_none()) return py::str(viz::heatmap_svg(s, o));
             viz::write_sweep(s, std::string(py::str(path)), o);
             return py::none();
           },
           py::arg("path") = py::none(), py::kw_only(), py::arg("baseline") = "none", py::arg("reduce_axis") = "",
           py::arg("reduce") = "sum", py::arg("index") = -1, py::arg("position_labels") = py::none(),
           py::arg("limit") = 0.0f, py::arg("annotate") = true, py::arg("cell") = 0, py::arg("title") = "",
           R"(The sweep as a heatmap: SVG text, or written to `path` (.svg, .png, .pdf; .csv and .json write the table).

    baseline: 'clean' / 'corrupted' colours the change from that run ('none': raw values).
    A third axis is removed by `reduce` ('sum', 'mean', 'maxabs') over `reduce_axis` (default 'head'),
    or by taking `index` of it. limit fixes the colour range to [-limit, limit].)")
      .def("csv", &viz::sweep_csv, "One row per cell: its labels, then the value.")
      .def("json", &viz::sweep_json, "title, metric, clean, corrupted, axes, labels, shape and values as JSON.")
      .def("circuit",
           [](const SweepResult& s, float threshold, const py::object& path, const std::string& baseline,
              const std::string& output, const std::string& sender, const py::object& position_labels,
              const std::string& format) -> py::object {
             viz::CircuitOptions o;
             o.baseline = to_baseline(baseline);
             o.output = output;
             o.sender = sender;
             o.position_labels = to_strings(position_labels, "position_labels");
             return draw(viz::circuit_graph(s, threshold, o), path, format);
           },
           py::arg("threshold"), py::arg("path") = py::none(), py::kw_only(), py::arg("baseline") = "none",
           py::arg("output") = "logits", py::arg("sender") = "", py::arg("position_labels") = py::none(),
           py::arg("format") = "svg",
           "The cells whose |effect| >= threshold as a circuit diagram (edge width by |effect|, red positive, blue "
           "negative): SVG text, or written to `path`.")
      .def("__repr__", [](const SweepResult& s) {
        std::string axes;
        for (size_t i = 0; i < s.axes.size(); ++i) axes += (i ? ", " : "") + s.axes[i];
        return "<pathpatch.Sweep '" + s.title + "' (" + axes + ") " + to_string(s.values.shape()) + ", " + s.metric +
               ": clean " + std::to_string(s.clean) + ", corrupted " + std::to_string(s.corrupted) + ">";
      });
}

}  // namespace

void bind_patching(py::module_& m) {
  py::class_<Metric>(m, "Metric", R"(What a sweep scores each patched run by. Make one with the static methods:

    Metric.logit_diff(answer, wrong), Metric.normalized_logit_diff(answer, wrong), Metric.prob(answer),
    Metric.log_prob(answer), Metric.kl(), Metric.cross_entropy(), or Metric.custom(fn).
    answer / wrong: one token id per batch row (or one id for every row). positions: the scored
    positions (negative from the end), averaged over.)")
      .def_static("logit_diff",
                  [](const py::handle& answer, const py::handle& wrong, const py::handle& positions) {
                    return Metric::logit_diff(to_tokens(answer, "answer"), to_tokens(wrong, "wrong"),
                                              to_ints(positions, "positions"));
                  },
                  py::arg("answer"), py::arg("wrong"), py::arg("positions") = std::vector<int>{-1},
                  "logit(answer) - logit(wrong).")
      .def_static("normalized_logit_diff",
                  [](const py::handle& answer, const py::handle& wrong, const py::handle& positions) {
                    return Metric::normalized_logit_diff(to_tokens(answer, "answer"), to_tokens(wrong, "wrong"),
                                                         to_ints(positions, "positions"));
                  },
                  py::arg("answer"), py::arg("wrong"), py::arg("positions") = std::vector<int>{-1},
                  "(patched - corrupted) / (clean - corrupted) of the logit difference: 1 = clean, 0 = corrupted.")
      .def_static("prob",
                  [](const py::handle& answer, const py::handle& positions) {
                    return Metric::prob(to_tokens(answer, "answer"), to_ints(positions, "positions"));
                  },
                  py::arg("answer"), py::arg("positions") = std::vector<int>{-1}, "p(answer).")
      .def_static("log_prob",
                  [](const py::handle& answer, const py::handle& positions) {
                    return Metric::log_prob(to_tokens(answer, "answer"), to_ints(positions, "positions"));
                  },
                  py::arg("answer"), py::arg("positions") = std::vector<int>{-1}, "log p(answer).")
      .def_static("kl", [](const py::handle& positions) { return Metric::kl(to_ints(positions, "positions")); },
                  py::arg("positions") = std::vector<int>{-1}, "KL(clean || patched) of the next-token distribution.")
      .def_static("cross_entropy",
                  [](const py::handle& positions) { return Metric::cross_entropy(to_ints(positions, "positions")); },
                  py::arg("positions") = std::vector<int>{},
                  "-log p(the clean input's next token); default: every position but the last.")
      .def_static("custom",
                  [](const py::function& fn, const std::string& name, const py::handle& positions) {
                    return Metric::custom(name, python_metric(fn), to_ints(positions, "positions"));
                  },
                  py::arg("fn"), py::arg("name") = "custom metric", py::arg("positions") = std::vector<int>{-1},
                  R"(Your own metric: fn(logits) with logits a read-only float32 array [B, P, V] (P scored positions)
    returns one number per batch row, or one number for the batch. It runs once per experiment
    (and on the clean and corrupted runs), with the GIL held.

    >>> m = pathpatch.Metric.custom(lambda logits: logits[:, -1, mary] - logits[:, -1, john].mean(), "Mary vs John"))")
      .def_property_readonly("name", &Metric::name)
      .def_readonly("positions", &Metric::positions)
      .def("__repr__", [](const Metric& x) { return "<pathpatch.Metric " + x.name() + ">"; });

  py::class_<Sender>(m, "Sender",
                     "A path-patching sender: head `head` of layer `layer`, or its MLP (head None); its output at "
                     "every position, or at `positions` only (negative from the end).")
      .def(py::init([](int layer, const py::object& head, std::vector<int> positions) {
             return Sender{layer, head.is_none() ? -1 : head.cast<int>(), std::move(positions)};
           }),
           py::arg("layer"), py::arg("head") = py::none(), py::arg("positions") = std::vector<int>{})
      .def_readonly("layer", &Sender::layer)
      .def_readonly("positions", &Sender::positions)
      .def_property_readonly("head", [](const Sender& s) -> py::object {
        if (s.head < 0) return py::none();
        return py::int_(s.head);
      })
      .def("__repr__", [](const Sender& s) {
        return (s.head < 0 ? "Sender(f" + std::to_string(s.layer) : "Sender(a" + std::to_string(s.layer) + ".head" +
                std::to_string(s.head)) + at_positions(s.positions) + ")";
      });
  py::class_<Receiver>(m, "Receiver",
                       "A path-patching receiver: the logits, or a head's q, k, v or all three ('input'), at every "
                       "position or at `positions` only (negative from the end: -1 is IOI's END).")
      .def(py::init([](const std::string& kind, int layer, int head, std::vector<int> positions) {
             if (kind == "logits") {
               Receiver r = Receiver::logits();
               r.positions = std::move(positions);  // refused when used, as from C++
               return r;
             }
             return Receiver{Receiver::kind_named(kind), layer, head, std::move(positions)};
           }),
           py::arg("kind"), py::arg("layer") = -1, py::arg("head") = -1, py::arg("positions") = std::vector<int>{})
      .def_readonly("layer", &Receiver::layer)
      .def_readonly("head", &Receiver::head)
      .def_readonly("positions", &Receiver::positions)
      .def("__repr__", [](const Receiver& r) {
        if (r.kind == Receiver::Logits) return std::string("Receiver(logits)");
        return "Receiver(" + std::string(Receiver::kind_name(r.kind)) + ", a" + std::to_string(r.layer) + ".head" +
               std::to_string(r.head) + at_positions(r.positions) + ")";
      });

  bind_sweep(m);

  m.def("attention",
        [](const ModelPtr& model, const py::handle& input, int layer, int head, int row) {
          Batch b = to_batch(*model, input, "input");
          HeadAttention a;
          {
            py::gil_scoped_release nogil;
            a = head_attention(*model, b, layer, head, row);
          }
          return viz::attention_sweep(a.pattern, a.tokens,
                                      "attention of head " + std::to_string(layer) + "." + std::to_string(head));
        },
        py::arg("model"), py::arg("input"), py::arg("layer"), py::arg("head"), py::arg("row") = 0,
        R"(One head's attention pattern on one row of the input (padding left out), as a Sweep with axes
    ("query", "key") labelled by the tokens: .values is [T, T], and it shows itself as a heatmap.

    >>> a = pathpatch.attention(model, "When Mary and John went to the store, John gave a drink to", layer=2, head=0)
    >>> a.heatmap("L2.H0.svg", limit=1))");

  m.def("activation_patching",
        [](const ModelPtr& model, const py::handle& clean, const py::handle& corrupted, const Metric& metric,
           const py::handle& sites, const py::handle& layers, const py::handle& positions, int k, bool together,
           const std::string& direction, std::shared_ptr<Cache> cache, const py::object& progress) {
          Batch c = to_batch(*model, clean, "clean"), x = to_batch(*model, corrupted, "corrupted");
          Sites s = to_sites(sites, layers, positions, k, together);
          PatchingOptions o;
          o.direction = to_direction(direction);
          Common cm = common(std::move(cache), progress);
          o.cache = cm.cache;
          o.progress = cm.progress;
          Metric fit = fitted(metric, c.size);
          std::map<std::string, SweepResult> out;
          {
            py::gil_scoped_release nogil;
            out = activation_patching(*model, c, x, s, fit, o);
          }
          for (const auto& [name, sweep] : out) warn(sweep.warnings);
          return out;
        },
        py::arg("model"), py::arg("clean"), py::arg("corrupted"), py::arg("metric"), py::kw_only(),
        py::arg("sites") = std::vector<std::string>{"resid_pre", "attn_out", "mlp_out"}, py::arg("layers") = py::none(),
        py::arg("positions") = "all", py::arg("k") = 1, py::arg("together") = false, py::arg("direction") = "denoise",
        py::arg("cache") = nullptr, py::arg("progress") = py::none(),
        R"(Activation patching over sites: {site name: Sweep with axes (layer, [position], [head])}.

    sites: resid_pre, resid_mid, resid_post, attn_out, mlp_out (per layer); z, q, k, v, pattern,
        result (per layer and head; k and v count key/value heads).
    positions: 'all' (together), 'each' (a position axis), 'last', 'last_k' (with k), or a list of
        positions (each on its own; together=True patches them in one run).
    direction: 'denoise' runs the corrupted input with clean values patched in (TransformerLens's
        default); 'noise' runs the clean input with corrupted values.
    progress(done, total) is called as experiments finish; Ctrl-C stops the sweep.

    >>> sweeps = pathpatch.activation_patching(model, clean, corrupt, metric, sites=["z"], positions="each")
    >>> sweeps["z"].values.shape   # (n_layers, n_positions, n_heads))");

  m.def("path_patch",
        [](const ModelPtr& model, const py::handle& clean, const py::handle& corrupted, const py::handle& senders,
           const py::handle& receivers, bool mlps_on_path, std::shared_ptr<Cache> cache) {
          PyResult out{Result{}, model, {to_batch(*model, clean, "clean"), to_batch(*model, corrupted, "corrupted")}};
          std::vector<Sender> s = list_of<Sender>(senders, to_sender);
          std::vector<Receiver> r = list_of<Receiver>(receivers, to_receiver);
          PathPatchingOptions o = path_options(common(std::move(cache), py::none()), mlps_on_path, 64);
          py::gil_scoped_release nogil;
          out.r = path_patch(*model, out.inputs[0], out.inputs[1], s, r, o);
          return out;
        },
        py::arg("model"), py::arg("clean"), py::arg("corrupted"), py::arg("senders"), py::arg("receivers") = "logits",
        py::kw_only(), py::arg("mlps_on_path") = false, py::arg("cache") = nullptr,
        R"(One path-patching experiment: the clean run with the senders' corrupted effect reaching the receivers only.

    senders: 'a0.head3', 'f2' (an MLP), (layer, head), (layer, head, positions) (its output at those
        positions only), or a list of them.
    receivers: 'logits', 'a2.head1.q' / '.k' / '.v', 'a2.head1' (its q, k and v), one position of a
        head's input ('a2.head1.q.pos14'), ('q', 2, 1, [-1]) (at the last position), or a list.
    mlps_on_path: MLPs between sender and receiver are recomputed as part of the path.

    >>> r = pathpatch.path_patch(model, clean, corrupt, senders="a0.head1", receivers="a1.head2.k"))");

  m.def("sweep_senders",
        [](const ModelPtr& model, const py::handle& clean, const py::handle& corrupted, const Metric& metric,
           const py::handle& receivers, const std::vector<int>& sender_positions, bool include_mlps, bool mlps_on_path,
           size_t chunk, std::shared_ptr<Cache> cache, const py::object& progress) {
          Batch c = to_batch(*model, clean, "clean"), x = to_batch(*model, corrupted, "corrupted");
          std::vector<Receiver> r = list_of<Receiver>(receivers, to_receiver);
          PathPatchingOptions o = path_options(common(std::move(cache), progress), mlps_on_path, chunk);
          Metric fit = fitted(metric, c.size);
          SweepResult out;
          {
            py::gil_scoped_release nogil;
            out = sweep_senders(*model, c, x, r, fit, o, include_mlps, sender_positions);
          }
          warn(out.warnings);
          return out;
        },
        py::arg("model"), py::arg("clean"), py::arg("corrupted"), py::arg("metric"), py::kw_only(),
        py::arg("receivers") = "logits", py::arg("sender_positions") = std::vector<int>{},
        py::arg("include_mlps") = false, py::arg("mlps_on_path") = false,
        py::arg("chunk") = 64, py::arg("cache") = nullptr, py::arg("progress") = py::none(),
        R"(Every head (and each MLP as an extra head column, if include_mlps) as the sender to `receivers`: a Sweep (layer, head).
    sender_positions: each sends its output at these positions only (negative from the end).

    >>> s = pathpatch.sweep_senders(model, clean, corrupt, metric)   # every head -> logits
    >>> s.heatmap("senders.svg", baseline="clean"))");

  m.def("sweep_receivers",
        [](const ModelPtr& model, const py::handle& clean, const py::handle& corrupted, const Metric& metric,
           const py::handle& senders, const std::string& kind, const std::vector<int>& positions, bool mlps_on_path,
           size_t chunk, std::shared_ptr<Cache> cache, const py::object& progress) {
          Batch c = to_batch(*model, clean, "clean"), x = to_batch(*model, corrupted, "corrupted");
          std::vector<Sender> s = list_of<Sender>(senders, to_sender);
          PathPatchingOptions o = path_options(common(std::move(cache), progress), mlps_on_path, chunk);
          Metric fit = fitted(metric, c.size);
          const Receiver::Kind k = Receiver::kind_named(kind);
          SweepResult out;
          {
            py::gil_scoped_release nogil;
            out = sweep_receivers(*model, c, x, s, k, fit, o, positions);
          }
          warn(out.warnings);
          return out;
        },
        py::arg("model"), py::arg("clean"), py::arg("corrupted"), py::arg("metric"), py::kw_only(), py::arg("senders"),
        py::arg("kind") = "input", py::arg("positions") = std::vector<int>{}, py::arg("mlps_on_path") = false,
        py::arg("chunk") = 64, py::arg("cache") = nullptr, py::arg("progress") = py::none(),
        R"(Every head after the senders as the receiver (its q, k, v, or all three with kind='input'; at
    `positions` only if given, negative from the end): a Sweep (layer, head).

    >>> s = pathpatch.sweep_receivers(model, clean, corrupt, metric, senders="a1.head3", kind="q", positions=[-1]))");
}

}  // namespace pathpatch::python
