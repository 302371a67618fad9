// _pathpatch: the engine's C++ bindings. The package around it (python/pathpatch/__init__.py) is
// what users import; it adds the pure-Python conveniences (the activation cache, mean ablation).
#include "convert.hpp"

namespace pathpatch::python {

namespace {

// The Python class of each C++ error kind: pathpatch.Error, and under it one class per kind, each
// also a subclass of the built-in exception a Python user would catch for it.
struct ErrorClasses {
  py::object base, io, format, config, weight, input, name, predicate, budget, rule, tokenizer, render, internal;
};
ErrorClasses* classes = nullptr;  // made once at import; Python owns them for the process's life

py::object new_error(py::module_& m, const char* name, const char* doc, std::vector<py::handle> bases) {
  py::tuple t(bases.size());
  for (size_t i = 0; i < bases.size(); ++i) t[i] = py::reinterpret_borrow<py::object>(bases[i]);
  const std::string qualified = std::string("pathpatch.") + name;
  py::object cls = py::reinterpret_steal<py::object>(
      PyErr_NewExceptionWithDoc(qualified.c_str(), doc, t.ptr(), nullptr));
  if (!cls) throw py::error_already_set();
  m.attr(name) = cls;
  return cls;
}

}  // namespace

void bind_errors(py::module_& m) {
  static ErrorClasses c;
  c.base = new_error(m, "Error", "Base of every error pathpatch raises on bad input; catch it to handle them all.",
                     {PyExc_Exception});
  c.io = new_error(m, "IoError", "A file is missing or unreadable.", {c.base, PyExc_OSError});
  c.format = new_error(m, "FormatError", "A file's contents are malformed.", {c.base, PyExc_ValueError});
  c.config = new_error(m, "ConfigError", "A config.json key is missing or invalid.", {c.base, PyExc_ValueError});
  c.weight = new_error(m, "WeightError", "A tensor is missing, of the wrong shape, or holds NaN/Inf.",
                       {c.base, PyExc_ValueError});
  c.input = new_error(m, "InputError", "Token ids, shapes, arguments or inputs that do not fit.",
                      {c.base, PyExc_ValueError});
  c.name = new_error(m, "NameError", "An unknown node, activation or site name (the message suggests close ones).",
                     {c.base, PyExc_LookupError});
  c.predicate = new_error(m, "PredicateError", "A which/branch predicate returned something invalid.",
                          {c.base, PyExc_ValueError});
  c.budget = new_error(m, "BudgetError", "A path or memory budget was exceeded.", {c.base});
  c.rule = new_error(m, "RuleError", "A path rule does not parse or compile.", {c.base, PyExc_ValueError});
  c.tokenizer = new_error(m, "TokenizerError", "Tokenizer files, or text the tokenizer cannot handle.",
                          {c.base, PyExc_ValueError});
  c.render = new_error(m, "RenderError", "Graphviz layout or output failed.", {c.base});
  c.internal = new_error(m, "InternalError", "A broken invariant inside pathpatch: a bug, never your input.",
                         {PyExc_RuntimeError});
  classes = &c;
  m.attr("PatchingWarning") = py::reinterpret_steal<py::object>(PyErr_NewExceptionWithDoc(
      "pathpatch.PatchingWarning",
      "What an experiment did that may not be what was meant: a path rule that changed nothing, identical "
      "clean and corrupted inputs, a clean run that prefers the wrong answer, a sweep without experiments.",
      PyExc_UserWarning, nullptr));
  py::register_exception_translator([](std::exception_ptr p) {
    auto raise = [](const py::object& cls, const std::exception& e) { PyErr_SetString(cls.ptr(), e.what()); };
    try {
      if (p) std::rethrow_exception(p);
    } catch (const IoError& e) { raise(classes->io, e);
    } catch (const FormatError& e) { raise(classes->format, e);
    } catch (const ConfigError& e) { raise(classes->config, e);
    } catch (const WeightError& e) { raise(classes->weight, e);
    } catch (const InputError& e) { raise(classes->input, e);
    } catch (const NameError& e) { raise(classes->name, e);
    } catch (const PredicateError& e) { raise(classes->predicate, e);
    } catch (const BudgetError& e) { raise(classes->budget, e);
    } catch (const RuleError& e) { raise(classes->rule, e);
    } catch (const TokenizerError& e) { raise(classes->tokenizer, e);
    } catch (const RenderError& e) { raise(classes->render, e);
    } catch (const Error& e) { raise(classes->base, e);
    } catch (const InternalError& e) { raise(classes->internal, e);
    } catch (const py::cast_error& e) {
      // A value of the wrong type reached a conversion inside a call (the call's own arguments
      // are checked by pybind11 before it, with their names).
      PyErr_SetString(PyExc_TypeError, (std::string("pathpatch: an argument has the wrong type (") + e.what() + ")").c_str());
    }
  });
}

}  // namespace pathpatch::python

PYBIND11_MODULE(_pathpatch, m) {
  namespace ppy = pathpatch::python;
  m.doc() = "pathpatch's C++ engine; import the `pathpatch` package rather than this module.";
  ppy::bind_errors(m);
  ppy::bind_model(m);
  ppy::bind_run(m);
  ppy::bind_patching(m);
  ppy::bind_attribution(m);
  ppy::bind_lens(m);
  ppy::bind_viz(m);
}
