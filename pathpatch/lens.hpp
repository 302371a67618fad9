#pragma once
// Reading the residual stream in the unembedding's terms.
//
//   The logit lens (nostalgebraist 2020): each layer's residual stream read as if it were the last,
//   through the final norm (with each reading's own statistics, as the model would normalise it)
//   and the unembedding. TransformerLens's accumulated_resid(apply_ln=True) instead divides every
//   layer by the final residual's scale, as direct logit attribution below does.
//
//   Direct logit attribution (TransformerLens's decompose_resid / stack_head_results + logit_attrs):
//   the final residual is a sum of parts (the embeddings, each head's output, each attention's
//   bias, each MLP's output); each part's share of logit(answer) - logit(wrong) is its projection
//   through the final norm, with the norm's scale frozen at the whole residual's, onto
//   W_U[answer] - W_U[wrong]. The shares sum to the logit difference exactly (up to rounding).
//   Gemma-2 normalises each attention's output after summing its heads: there a head's part is
//   its output through that post-norm too, its scale frozen at the heads' sum's in the same way
//   (TransformerLens's hook_result stops before the post-norm, so its head parts do not sum).
//
//   pp::LogitLens lens = pp::logit_lens(model, batch);
//   pp::Tensor logits = lens.logits(model, -1);            // [n_layers + 1, B, V] at the last position
//   pp::LogitAttribution dla = pp::direct_logit_attribution(model, batch, answer, wrong);
//   dla.values;                                            // [C]: each part's share, mean over rows
#include <cstdint>
#include <string>
#include <vector>

#include "graph/batch.hpp"
#include "graph/tensor.hpp"
#include "models/model.hpp"
#include "pathpatch/metrics.hpp"
#include "pathpatch/patching.hpp"
#include "pathpatch/run.hpp"

namespace pathpatch {

// The model's final norm (ln_final) applied to any residual-stream values [..., D]: what
// Result::hidden holds for the last layer's resid_post.
Tensor final_norm(const Model& model, const Tensor& resid);

struct LogitLens {
  // "resid_pre0" .. "resid_pre{n-1}", "resid_post{n-1}": n_layers + 1 readings, the last the model's own.
  std::vector<std::string> labels;
  Tensor hidden;  // [n_layers + 1, B, T, D]: each reading through the final norm
  Batch batch;    // the input it read

  int64_t readings() const { return hidden.size(0); }
  // Reading r's final-norm output [B, T, D].
  Tensor reading(int64_t r) const;
  // The logits of every reading at one position (negative: from the end): [n_layers + 1, B, V].
  // InputError for a position outside the batch.
  Tensor logits(const Model& model, int64_t position) const;
  // A metric of every reading, per row: [n_layers + 1, B]. KL compares with the model's own output
  // (the last reading) as the clean run; the normalised difference, which needs a corrupted run,
  // is an InputError.
  Tensor score(const Model& model, const Metric& metric) const;
  // p(the next input token) at every (reading, position): [n_layers + 1, T - 1], mean over rows
  // (padding left out). How early each position's continuation becomes predictable.
  Tensor next_token_probs(const Model& model) const;
};

// Runs the forward (its interventions applied) and reads every layer's residual stream.
LogitLens logit_lens(const Model& model, const Batch& batch, const RunOptions& options = {});

// One part of the final residual stream.
struct ResidualPart {
  enum Kind {
    Embed,        // "embed": the token embeddings (scaled where the family scales them)
    PosEmbed,     // "pos_embed": learned positions (GPT-2, GPT-Neo)
    Head,         // "aL.hH": one head's output (its z through its slice of W_O; Gemma-2: then
                  // through the post-attention norm, its scale frozen at the heads' sum's)
    AttnBias,     // "aL.bias": the output projection's bias (and what float rounding leaves)
    Mlp,          // "mL"
    NormBias,     // "ln_final.bias": LayerNorm's bias, the same for every input
    UnembedBias,  // "b_U": the logits' own bias (a processed model's, Model::processed)
  } kind;
  int layer = -1, head = -1;
  std::string name() const;
};

struct LogitAttribution {
  // Embed, PosEmbed (learned positions only), per layer its heads and bias and its MLP (models with
  // MLPs), then NormBias (LayerNorm only), UnembedBias (models with b_U only).
  std::vector<ResidualPart> components;
  Tensor per_example;        // [C, B]: each component's share of each row's logit difference
  Tensor values;             // [C]: the mean over rows
  std::vector<float> total;  // per row: the logit difference (before Gemma-2's soft-cap); the shares sum to it
  int64_t position = -1;     // the position read, non-negative

  // The heads' shares as a (layer, head) grid with an "mlp" column where the model has MLPs:
  // the same SweepResult activation patching returns (heatmaps, CSV, JSON).
  SweepResult heads(const Model& model) const;
};

// Each component's share of logit(answer) - logit(wrong) at `position` (negative: from the end),
// one answer and wrong token per row (`wrong` empty: the answer's logit alone). InputError for a
// token outside the vocabulary, a row count that is not the batch's, or a position outside it.
LogitAttribution direct_logit_attribution(const Model& model, const Batch& batch, const std::vector<int32_t>& answer,
                                          const std::vector<int32_t>& wrong, int64_t position = -1,
                                          const RunOptions& options = {});

}  // namespace pathpatch
