#pragma once
// What the bindings share: conversions between Python values and the engine's, and the rules that
// keep Python objects safe while the engine runs without the GIL.
//
// The GIL: every long C++ call (a run, a sweep) releases it; whatever calls back into Python (a
// predicate, a metric, a progress function) takes it back first. A Python object that C++ copies
// around (inside a std::function) is held through share(), so that copying never touches its
// reference count without the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "pathpatch/pathpatch.hpp"
#include "viz/graphviz.hpp"

namespace py = pybind11;

namespace pathpatch::python {

using ModelPtr = std::shared_ptr<Model>;

// A read-only numpy array over the tensor's storage; the array keeps the storage alive (no copy).
// None for an undefined tensor.
py::object to_numpy(const Tensor& t);
// A float32 copy of an array-like (numpy array, list, scalar). InputError naming `what` if it is not
// numeric.
Tensor to_tensor(const py::handle& obj, const std::string& what);

// An input of a run, from what a user may hold: a Batch, a string or a list of strings (encoded
// with the model's tokenizer, BOS where Hugging Face adds it), or token ids (a 1-D or 2-D integer
// array or list: one row, or rows of one length). Checked against the model.
Batch to_batch(const Model& m, const py::handle& obj, const std::string& what);
bool is_text_list(const py::handle& obj);  // a non-empty list or tuple of strings
// Token ids (1-D: one row; 2-D: rows of one length) as a batch without padding; not yet checked
// against a model. InputError for floats, ragged rows, negative ids.
Batch ids_to_batch(const py::handle& obj, const std::string& what);
std::vector<Batch> to_batches(const Model& m, const py::handle& inputs);

std::vector<int> to_ints(const py::handle& obj, const std::string& what);  // None -> empty
std::vector<std::string> to_strings(const py::handle& obj, const std::string& what);  // None -> empty

py::dict stats_dict(const RunStats& s);
// RunOptions from forward()'s and run()'s keywords: interventions (a list, or None), logits, cache.
RunOptions run_options(const py::handle& interventions, bool logits, std::shared_ptr<Cache> cache, uint64_t budget);

// Shared by the patching and attribution bindings (patching.cpp).
std::vector<int32_t> to_tokens(const py::handle& obj, const std::string& what);
// One answer (or wrong) token given for a batch of several rows serves every row.
Metric fitted(Metric metric, int64_t rows);
// activation_patching's sites=, layers=, positions=, k=, together= as Sites.
Sites to_sites(const py::handle& names, const py::handle& layers, const py::handle& positions, int k, bool together);
Direction to_direction(const std::string& direction);

// A picture as Python gets it: text formats (svg, dot, gv) as str, images as bytes.
py::object rendered(const std::string& bytes, const std::string& format);
// A Graphviz graph written to `path` (returns None; the format from the extension), or else
// rendered in `format` ("dot": its source).
py::object draw(const viz::Digraph& g, const py::object& path, const std::string& format);

// A Python object behind a shared_ptr whose copies need no GIL; the last one takes the GIL to let go.
std::shared_ptr<py::object> share(py::object o);

// Issues each message once as a pathpatch.PatchingWarning (a UserWarning); raises if the warnings
// filter turns them into errors. Call with the GIL held.
void warn(const std::vector<std::string>& messages);

// Runs a pending Python signal handler (Ctrl-C raises KeyboardInterrupt) and rethrows what it
// raised. Call with the GIL held.
void check_signals();
// A progress function for the engine: takes the GIL, checks for Ctrl-C, then calls `user` (if not
// None) with (done, total).
Progress progress_callback(const py::object& user);

// The parts of the module, one per file.
void bind_errors(py::module_& m);
void bind_model(py::module_& m);
void bind_run(py::module_& m);
void bind_patching(py::module_& m);
void bind_attribution(py::module_& m);
void bind_lens(py::module_& m);
void bind_viz(py::module_& m);

}  // namespace pathpatch::python
