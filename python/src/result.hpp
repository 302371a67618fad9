#pragma once
// A run's result as Python sees it: the engine's Result, with the model and inputs it came from
// (drawing its provenance needs them; holding the model keeps it alive as long as the result).
#include "convert.hpp"

namespace pathpatch::python {

struct PyResult {
  Result r;
  ModelPtr model;
  std::vector<Batch> inputs;
};

void bind_result(py::module_& m);

}  // namespace pathpatch::python
