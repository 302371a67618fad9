#include "pathpatch/run.hpp"

#include <algorithm>

#include "graph/error.hpp"
#include "pathpatch/detail/session.hpp"

namespace pathpatch {

const Tensor& Result::probe(std::string_view label) const {
  const ProbeRecord* found = nullptr;
  size_t count = 0;
  const std::string full = expand_activation_name(label);
  for (const ProbeRecord& p : probes)
    if (p.label == label || p.activation == full) {
      found = &p;
      ++count;
    }
  if (!found) throw NameError("no probe labelled '" + std::string(label) + "' recorded in this result");
  if (count > 1)
    throw InputError("probe '" + std::string(label) + "' was recorded on " + std::to_string(count) +
                     " paths; pick one from Result::probes by its expression");
  return found->value;
}

void check_inputs(const Model& model, const std::vector<Batch>& inputs) {
  if (inputs.empty()) throw InputError("run: no inputs given");
  for (size_t i = 0; i < inputs.size(); ++i) {
    model.validate(inputs[i], "input " + std::to_string(i));
    if (!inputs[i].same_layout(inputs[0]))
      throw InputError("input " + std::to_string(i) + " is " + std::to_string(inputs[i].size) + " x " +
                       std::to_string(inputs[i].seq) + " with its own padding, input 0 is " +
                       std::to_string(inputs[0].size) + " x " + std::to_string(inputs[0].seq) +
                       "; all inputs of a run need the same batch size, length and padding mask");
  }
}

Shape activation_shape(const Model& model, ActId act, int64_t batch, int64_t seq) {
  const ModelConfig& c = model.config();
  const Activation& a = model.graph().activation(act);
  Shape s;
  for (char ax : a.axes) {
    switch (ax) {
      case 'B': s.push_back(batch); break;
      case 'T':
      case 'S': s.push_back(seq); break;
      case 'H': s.push_back(a.kv_heads ? c.n_kv_heads : c.n_heads); break;
      case 'E': s.push_back(c.d_head); break;
      case 'D': s.push_back(c.d_model); break;
      case 'F': s.push_back(c.d_mlp); break;
      case 'V': s.push_back(c.vocab_size); break;
      default: PP_CHECK(false, std::string("unknown axis letter ") + ax);
    }
  }
  return s;
}

Result run(const Model& model, const std::vector<Batch>& inputs, const WhichFn& which, const BranchFn& branch,
           const RunOptions& options) {
  check_inputs(model, inputs);
  const PathAlphabet names(model.graph(), inputs[0].seq);
  return detail::run_traced(model, inputs, options, [&](Tracer& tracer, uint64_t& visits) {
    ExprId root = tracer.trace(which, branch, options.path_budget);
    visits = tracer.visits();
    return root;
  }, &names);
}

Result run(const Model& model, const std::vector<Batch>& inputs, const RunOptions& options) {
  return run(model, inputs, [](const Path&) { return 0; }, [](const Path&) { return Split::None; }, options);
}

Result forward(const Model& model, const Batch& batch, const RunOptions& options) { return run(model, {batch}, options); }

}  // namespace pathpatch
