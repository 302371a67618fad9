#pragma once
// Greedy decoding, with or without interventions: what a model writes after each row of a batch,
// and what an ablation or a patch changes in it.
//
//   pp::Generation plain = pp::generate(model, batch, 10);
//   pp::RunOptions o;
//   o.interventions = {pp::zero("blocks.1.attn.hook_z", {{3}, {}})};   // head 1.3 silenced
//   pp::Generation ablated = pp::generate(model, batch, 10, o);
//
// Each new token re-runs the whole forward (there is no key/value cache), so an intervention
// applies at every position, the new ones included; one whose value has a fixed number of
// positions (a set() of a [T, ...] tensor) is refused with the engine's ShapeError at the second
// token.
#include <cstdint>
#include <vector>

#include "graph/batch.hpp"
#include "models/model.hpp"
#include "pathpatch/run.hpp"

namespace pathpatch {

struct Generation {
  std::vector<std::vector<int32_t>> tokens;  // per row: the new tokens, in order
  Batch batch;                               // the input with the new tokens after each row
};

// `n_tokens` greedy (arg-max) tokens per row. InputError for a negative count or one that would
// take a row past the model's context.
Generation generate(const Model& model, const Batch& batch, int n_tokens, const RunOptions& options = {});

}  // namespace pathpatch
