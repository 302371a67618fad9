#include "convert.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

namespace pathpatch::python {

py::object to_numpy(const Tensor& t) {
  if (!t.defined()) return py::none();
  auto* keep = new Tensor(t);  // owned by the capsule from here on
  py::capsule owner(keep, [](void* p) { delete static_cast<Tensor*>(p); });
  std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
  py::array a(py::dtype::of<float>(), shape, {}, t.data(), owner);
  // The engine's values are shared (the memo cache may hold the same buffer): never writable.
  py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return a;
}

Tensor to_tensor(const py::handle& obj, const std::string& what) {
  auto arr = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(obj);  // null if not numeric
  if (!arr) throw InputError(what + ": expected an array of numbers, got " + std::string(py::repr(obj)).substr(0, 200));
  Shape shape(arr.shape(), arr.shape() + arr.ndim());
  std::vector<float> values(arr.data(), arr.data() + arr.size());
  return Tensor::from_vector(shape, std::move(values));
}

bool is_text_list(const py::handle& obj) {
  if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj)) return false;
  py::sequence seq = py::reinterpret_borrow<py::sequence>(obj);
  if (seq.size() == 0) return false;
  for (const auto& item : seq)
    if (!py::isinstance<py::str>(item)) return false;
  return true;
}

Batch ids_to_batch(const py::handle& obj, const std::string& what) {
  py::module_ np = py::module_::import("numpy");
  py::array arr;
  try {
    arr = np.attr("asarray")(obj);
  } catch (py::error_already_set& e) {
    if (e.matches(PyExc_ValueError) && py::isinstance<py::sequence>(obj))
      throw InputError(what + ": token-id rows of different lengths; pad them with model.to_batch(texts) or "
                              "pathpatch.Batch(ids, mask)");
    throw InputError(what + ": expected text, token ids or a Batch (" + std::string(e.what()) + ")");
  }
  const char kind = arr.dtype().kind();
  if (kind != 'i' && kind != 'u') {
    if (kind == 'O')
      throw InputError(what + ": token-id rows of different lengths; pad them with model.to_batch(texts) or "
                              "pathpatch.Batch(ids, mask)");
    throw InputError(what + ": token ids must be integers, got an array of " + std::string(py::str(arr.dtype())) +
                     " (or give text, or a Batch)");
  }
  if (arr.ndim() != 1 && arr.ndim() != 2)
    throw InputError(what + ": token ids must be 1-D (one row) or 2-D (rows), got " + std::to_string(arr.ndim()) +
                     " dimensions");
  auto ids = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(arr);
  const int64_t rows = arr.ndim() == 1 ? 1 : arr.shape(0);
  const int64_t cols = arr.ndim() == 1 ? arr.shape(0) : arr.shape(1);
  if (rows == 0 || cols == 0) throw InputError(what + ": no token ids");
  std::vector<std::vector<int32_t>> out(rows, std::vector<int32_t>(cols));
  const int64_t* p = ids.data();
  for (int64_t b = 0; b < rows; ++b)
    for (int64_t t = 0; t < cols; ++t) {
      const int64_t v = p[b * cols + t];
      if (v < 0 || v > std::numeric_limits<int32_t>::max())
        throw InputError(what + ": token id " + std::to_string(v) + " at row " + std::to_string(b) + ", position " +
                         std::to_string(t) + " is not a valid id");
      out[b][t] = static_cast<int32_t>(v);
    }
  return Batch::from_rows(out);
}

Batch to_batch(const Model& m, const py::handle& obj, const std::string& what) {
  if (py::isinstance<Batch>(obj)) {
    Batch b = obj.cast<Batch>();
    m.validate(b, what);
    return b;
  }
  if (py::isinstance<py::str>(obj)) return m.encode({obj.cast<std::string>()});
  if (is_text_list(obj)) return m.encode(obj.cast<std::vector<std::string>>());
  Batch b = ids_to_batch(obj, what);
  m.validate(b, what);
  return b;
}

std::vector<Batch> to_batches(const Model& m, const py::handle& inputs) {
  if (py::isinstance<py::str>(inputs) || py::isinstance<Batch>(inputs) || !py::isinstance<py::sequence>(inputs))
    throw InputError("inputs: expected a list of inputs ([clean, corrupted, ...]), got " +
                     std::string(py::str(py::type::of(inputs))));
  std::vector<Batch> out;
  size_t k = 0;
  for (const auto& item : py::reinterpret_borrow<py::sequence>(inputs))
    out.push_back(to_batch(m, item, "input " + std::to_string(k++)));
  return out;
}

std::vector<int> to_ints(const py::handle& obj, const std::string& what) {
  if (obj.is_none()) return {};
  if (py::isinstance<py::int_>(obj)) return {obj.cast<int>()};
  try {
    return obj.cast<std::vector<int>>();
  } catch (const py::cast_error&) {
    throw InputError(what + ": expected an int or a list of ints, got " + std::string(py::str(py::type::of(obj))));
  }
}

std::vector<std::string> to_strings(const py::handle& obj, const std::string& what) {
  if (obj.is_none()) return {};
  if (py::isinstance<py::str>(obj)) return {obj.cast<std::string>()};
  try {
    return obj.cast<std::vector<std::string>>();
  } catch (const py::cast_error&) {
    throw InputError(what + ": expected a list of strings, got " + std::string(py::repr(obj)).substr(0, 200));
  }
}

py::object rendered(const std::string& bytes, const std::string& format) {
  if (format == "svg" || format == "dot" || format == "gv") return py::str(bytes);
  return py::bytes(bytes);
}

py::object draw(const viz::Digraph& g, const py::object& path, const std::string& format) {
  if (!path.is_none()) {
    g.render_file(std::string(py::str(path)));
    return py::none();
  }
  return rendered(format == "dot" ? g.dot() : g.render(format), format);
}

py::dict stats_dict(const RunStats& s) {
  py::dict d;
  d["node_visits"] = s.node_visits;
  d["steps"] = s.steps;
  d["computed"] = s.computed;
  d["cache_hits"] = s.cache_hits;
  d["bytes_held"] = s.bytes_held;
  d["peak_bytes"] = s.peak_bytes;
  d["flops"] = s.flops;
  d["flops_saved"] = s.flops_saved;
  d["seconds"] = s.seconds;
  return d;
}

std::shared_ptr<py::object> share(py::object o) {
  return std::shared_ptr<py::object>(new py::object(std::move(o)), [](py::object* p) {
    py::gil_scoped_acquire gil;
    delete p;
  });
}

void warn(const std::vector<std::string>& messages) {
  // Never released: a static py::object would be destroyed after the interpreter is gone.
  static PyObject* category =
      py::object(py::module_::import("pathpatch._pathpatch").attr("PatchingWarning")).release().ptr();
  std::vector<std::string> said;
  for (const std::string& m : messages) {
    if (std::find(said.begin(), said.end(), m) != said.end()) continue;
    said.push_back(m);
    if (PyErr_WarnEx(category, m.c_str(), 2) != 0) throw py::error_already_set();
  }
}

void check_signals() {
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
}

Progress progress_callback(const py::object& user) {
  std::shared_ptr<py::object> fn = user.is_none() ? nullptr : share(user);
  return [fn](size_t done, size_t total) {
    py::gil_scoped_acquire gil;
    check_signals();
    if (fn) (*fn)(done, total);
  };
}

}  // namespace pathpatch::python
