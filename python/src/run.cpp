// The engine's entry points: run() with Python predicates or path rules, forward(), interventions,
// memo caches and results.
#include <unordered_map>

#include "convert.hpp"
#include "result.hpp"

namespace pathpatch::python {

namespace {

// Python's which/branch functions as the engine's WhichFn/BranchFn. A path reaches Python as a
// tuple of str, output first ("ln_final", "f1", ..., "emb"), so `"a1" in path`, `path[-1]` and
// iteration work as on any tuple. Each name's str is made once per run (the run's path names are
// interned, so their addresses identify them) and reused. Lives on the stack of one run() call:
// made and destroyed with the GIL held.
class Predicates {
 public:
  Predicates(py::object which, py::object branch) : which_(std::move(which)), branch_(std::move(branch)) {}

  WhichFn which() {
    if (which_.is_none()) return [](const Path&) { return 0; };
    return [this](const Path& p) {
      py::gil_scoped_acquire gil;
      py::object r = which_(path_tuple(p));
      if (!py::isinstance<py::int_>(r) && !py::hasattr(r, "__index__"))
        throw PredicateError("which() returned " + describe(r) + " for the path " + p.str() +
                             "; it must return the index of an input (an int)");
      return py::int_(r).cast<int>();
    };
  }

  BranchFn branch() {
    if (branch_.is_none()) return [](const Path&) { return Split::None; };
    return [this](const Path& p) {
      py::gil_scoped_acquire gil;
      py::object r = branch_(path_tuple(p));
      if (r.is_none()) return Split::None;
      if (!py::isinstance<Split>(r))
        throw PredicateError("branch() returned " + describe(r) + " for the path " + p.str() +
                             "; it must return pathpatch.Split.NONE, .EDGES or .POSITIONS (or None)");
      return r.cast<Split>();
    };
  }

 private:
  static std::string describe(const py::object& r) {
    return std::string(py::repr(r)) + " (" + std::string(py::str(py::type::of(r).attr("__name__"))) + ")";
  }

  py::tuple path_tuple(const Path& p) {
    py::tuple t(p.size());
    for (size_t i = 0; i < p.size(); ++i) {
      auto [it, added] = names_.try_emplace(&p.name(i));
      if (added) {
        const std::string_view s = p[i];
        it->second = py::str(s.data(), s.size());
      }
      t[i] = it->second;
    }
    return t;
  }

  py::object which_, branch_;
  std::unordered_map<const PathName*, py::object> names_;
};

std::vector<Intervention> to_interventions(const py::handle& obj) {
  if (obj.is_none()) return {};
  if (py::isinstance<Intervention>(obj)) return {obj.cast<Intervention>()};
  try {
    return obj.cast<std::vector<Intervention>>();
  } catch (const py::cast_error&) {
    throw InputError("interventions: expected a list of pathpatch interventions (replace, zero, add, set, probe), got " +
                     std::string(py::str(py::type::of(obj))));
  }
}

PathRules to_rules(const py::handle& obj) {
  if (py::isinstance<PathRules>(obj)) return obj.cast<PathRules>();
  PathRules rules;
  if (py::isinstance<py::str>(obj)) return rules.add(obj.cast<std::string>(), 1);
  try {
    for (const auto& [pattern, input] : obj.cast<std::vector<std::pair<std::string, int>>>()) rules.add(pattern, input);
  } catch (const py::cast_error&) {
    throw InputError("rules: expected a PathRules, a pattern (its paths read input 1) or a list of (pattern, input), got " +
                     std::string(py::str(py::type::of(obj))));
  }
  return rules;
}

Select select_of(const py::handle& heads, const py::handle& positions) {
  return Select{to_ints(heads, "heads"), to_ints(positions, "positions")};
}

}  // namespace

RunOptions run_options(const py::handle& interventions, bool logits, std::shared_ptr<Cache> cache, uint64_t budget) {
  RunOptions o;
  o.interventions = to_interventions(interventions);
  o.logits = logits;
  o.cache = std::move(cache);
  o.path_budget = budget;
  return o;
}


void bind_run(py::module_& m) {
  py::enum_<Split>(m, "Split", "How branch(path) splits a node's inputs into separate paths (graph/path.hpp).")
      .value("NONE", Split::None, "One shared path for all the node's inputs.")
      .value("EDGES", Split::Edges, "Each incoming edge gets its own path (residual / sub-layer; heads; q, k, v).")
      .value("POSITIONS", Split::Positions,
             "At ln_final, aL.head, fL.head and a head's input aL.headH.q|k|v: each position's row gets its own path.");

  py::class_<Cache, std::shared_ptr<Cache>>(m, "Cache", R"(A memo cache: share one across runs and sweeps of one model to reuse what they computed.

    Cache(budget_bytes=4 GiB): least recently used values are dropped beyond the budget.)")
      .def(py::init<uint64_t>(), py::arg("budget_bytes") = Cache::kDefaultBudget)
      .def_property_readonly("entries", &Cache::entries, "Values held.")
      .def_property_readonly("bytes_held", [](const Cache& c) { return c.counters().bytes_held; })
      .def_property("budget", &Cache::budget, &Cache::set_budget, "Bytes the cache may hold.")
      .def("clear", &Cache::clear, "Drops the values (provenance is kept).");

  py::class_<Intervention>(m, "Intervention", "An intervention on a named activation; made by replace, zero, add, set, probe.")
      .def_property_readonly("op", [](const Intervention& i) { return op_name(i.op); })
      .def_readonly("activation", &Intervention::activation)
      .def_property_readonly("heads", [](const Intervention& i) { return i.select.heads; })
      .def_property_readonly("positions", [](const Intervention& i) { return i.select.positions; })
      .def_readonly("source", &Intervention::source)
      .def_property_readonly("value", [](const Intervention& i) { return to_numpy(i.value); })
      .def_readonly("label", &Intervention::label)
      .def("__repr__", [](const Intervention& i) {
        std::string s = std::string(op_name(i.op)) + "('" + i.activation + "'";
        if (i.op == Op::Replace) s += ", source=" + std::to_string(i.source);
        if (!i.select.heads.empty()) s += ", heads=" + std::string(py::str(py::cast(i.select.heads)));
        if (!i.select.positions.empty()) s += ", positions=" + std::string(py::str(py::cast(i.select.positions)));
        return s + ")";
      });

  const char* select_doc = "heads / positions: an int or a list of ints selecting what changes (None: all; "
                           "negative positions count from the end; for k and v under grouped-query attention, "
                           "heads are key/value heads).";
  m.def("replace",
        [](const std::string& activation, int source, const py::object& heads, const py::object& positions) {
          return replace(activation, source, select_of(heads, positions));
        },
        py::arg("activation"), py::arg("source"), py::arg("heads") = py::none(), py::arg("positions") = py::none(),
        (std::string("Replaces an activation with its value in input `source`'s plain forward. ") + select_doc).c_str());
  m.def("zero",
        [](const std::string& activation, const py::object& heads, const py::object& positions) {
          return zero(activation, select_of(heads, positions));
        },
        py::arg("activation"), py::arg("heads") = py::none(), py::arg("positions") = py::none(),
        (std::string("Zeroes an activation (zero ablation). ") + select_doc).c_str());
  m.def("add",
        [](const std::string& activation, const py::handle& value, const py::object& heads, const py::object& positions) {
          return add(activation, to_tensor(value, "add(" + activation + ")"), select_of(heads, positions));
        },
        py::arg("activation"), py::arg("value"), py::arg("heads") = py::none(), py::arg("positions") = py::none(),
        (std::string("Adds `value` (shaped like trailing axes of the activation, e.g. [d_model] for a residual "
                     "stream) to an activation: steering. ") + select_doc).c_str());
  m.def("set",
        [](const std::string& activation, const py::handle& value, const py::object& heads, const py::object& positions) {
          return set(activation, to_tensor(value, "set(" + activation + ")"), select_of(heads, positions));
        },
        py::arg("activation"), py::arg("value"), py::arg("heads") = py::none(), py::arg("positions") = py::none(),
        (std::string("Sets an activation to `value` (shaped like trailing axes of it: a dataset mean, say). ") +
         select_doc).c_str());
  m.def("probe", [](const std::string& activation, const std::string& label) { return probe(activation, label); },
        py::arg("activation"), py::arg("label") = "",
        "Records an activation's value without changing it (read it with result.probe(label or name)).");

  py::class_<PathRules>(m, "PathRules", R"(Path rules: which input paths read, by patterns over path names (pathpatch/rules.hpp).

    >>> rules = pathpatch.PathRules().add("ln_final (f* f*.head)* a1 a1.head a1.head2", 1)
    >>> r = pathpatch.run(model, [clean, corrupt], rules=rules))")
      .def(py::init<>())
      .def("add", [](PathRules& r, const std::string& pattern, int input) -> PathRules& { return r.add(pattern, input); },
           py::arg("pattern"), py::arg("input"), py::return_value_policy::reference_internal,
           "Paths matching `pattern` read `input` (the first matching rule decides); RuleError if it does not parse.")
      .def("otherwise", &PathRules::otherwise, py::arg("input"), py::return_value_policy::reference_internal,
           "The input of paths no rule matches (default 0).")
      .def("__str__", &PathRules::str)
      .def("__repr__", [](const PathRules& r) { return "PathRules(\n" + r.str() + ")"; });

  bind_result(m);

  m.def("run",
        [](const ModelPtr& model, const py::handle& inputs, const py::object& which, const py::object& branch,
           const py::object& rules, const py::handle& interventions, bool logits, std::shared_ptr<Cache> cache,
           uint64_t path_budget) {
          PyResult out{Result{}, model, to_batches(*model, inputs)};
          RunOptions o = run_options(interventions, logits, std::move(cache), path_budget);
          if (!rules.is_none()) {
            if (!which.is_none() || !branch.is_none())
              throw InputError("run: give either rules or which/branch predicates, not both");
            PathRules r = to_rules(rules);
            {
              py::gil_scoped_release nogil;
              out.r = run(*model, out.inputs, r, o);
            }
            warn(out.r.warnings);
            return out;
          }
          Predicates predicates(which, branch);
          WhichFn w = predicates.which();
          BranchFn b = predicates.branch();
          {
            py::gil_scoped_release nogil;
            out.r = run(*model, out.inputs, w, b, o);
          }
          return out;
        },
        py::arg("model"), py::arg("inputs"), py::arg("which") = py::none(), py::arg("branch") = py::none(),
        py::kw_only(), py::arg("rules") = py::none(), py::arg("interventions") = py::none(), py::arg("logits") = true,
        py::arg("cache") = nullptr, py::arg("path_budget") = 1'000'000,
        R"(Runs the path-patching engine: one forward in which each path through the model reads the input `which` picks.

    inputs: a list of inputs (text, token ids or Batch), all of one layout: [clean, corrupted, ...].
    which(path) -> int: asked at the embeddings; path is a tuple of node names, output first
        ("ln_final", "f1", "f1.head", "a1", ..., "emb"). Default: every path reads input 0.
    branch(path) -> Split: asked at aL, aL.head, aL.headH, fL, fL.head (the node's name is path[-1]);
        where it returns Split.EDGES or Split.POSITIONS, the node's inputs get separate paths.
        Default (or None returned): no split.
    rules: instead of which/branch, a PathRules (or a pattern string whose paths read input 1).
    interventions: replace / zero / add / set / probe, applied wherever their activation is computed.
    cache: a pathpatch.Cache shared across runs of this model (fresh if None).

    >>> clean, corrupt = model.to_tokens("When Mary and John"), model.to_tokens("When Alice and Bob")
    >>> r = pathpatch.run(model, [clean, corrupt],
    ...                   which=lambda path: 1 if "a1.head2" in path else 0,
    ...                   branch=lambda path: pathpatch.Split.EDGES if path[-1] in ("a1", "a1.head") else None)
    >>> r.logits.shape   # (1, 4, d_vocab): the clean run with head 1.2 reading the corrupted input

    A predicate that raises stops the run; its exception reaches you with its traceback.)");

  m.def("forward",
        [](const ModelPtr& model, const py::handle& input, const py::handle& interventions, bool logits,
           std::shared_ptr<Cache> cache) {
          PyResult out{Result{}, model, {to_batch(*model, input, "input")}};
          RunOptions o = run_options(interventions, logits, std::move(cache), 1'000'000);
          py::gil_scoped_release nogil;
          out.r = forward(*model, out.inputs[0], o);
          return out;
        },
        py::arg("model"), py::arg("input"), py::kw_only(), py::arg("interventions") = py::none(),
        py::arg("logits") = true, py::arg("cache") = nullptr,
        R"(The plain forward of one input (text, token ids or Batch), with interventions if given.

    >>> r = pathpatch.forward(model, "When Mary and John went", interventions=[pathpatch.zero("z1", heads=[2])])
    >>> r.logits[0, -1].argmax())");
}

}  // namespace pathpatch::python
