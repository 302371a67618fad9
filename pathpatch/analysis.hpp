#pragma once
// Head scores read off attention patterns, and the inputs that show them. For the induction circuit
// (Olsson et al. 2022): a previous-token head attends from each position to the one before it; an
// induction head attends, in a repeated sequence, to the token after the previous occurrence of the
// current token.
#include <cstdint>
#include <string>
#include <vector>

#include "graph/batch.hpp"
#include "graph/tensor.hpp"
#include "models/model.hpp"

namespace pathpatch {

// `rows` sequences of [bos] + s + s, where s is `half` tokens drawn uniformly from [lo, hi) with
// seed `seed` (bos < 0: none). Position p >= first_repeat() of a row repeats position p - half.
struct RepeatedTokens {
  Batch batch;
  int64_t half = 0;
  int64_t first_repeat() const { return batch.seq - half; }
};
RepeatedTokens repeated_tokens(int64_t rows, int64_t half, int32_t lo, int32_t hi, uint64_t seed, int32_t bos = -1);

// The same rows with the first copy of s replaced by other random tokens: the second half is then
// no repeat, so induction has nothing to copy (the usual corrupted input for induction).
Batch unrepeated_tokens(const RepeatedTokens& r, int32_t lo, int32_t hi, uint64_t seed);

// Mean attention, per [layer, head], from each position p >= 1 to p - 1 (every real position).
Tensor previous_token_scores(const Model& model, const Batch& batch);
// Mean attention, per [layer, head], from each repeated position p to p - half + 1.
Tensor induction_scores(const Model& model, const RepeatedTokens& r);

// One head's attention on one row of a batch, padding left out: `pattern` [n, n] (query x key
// positions of the row's n real tokens, each row summing to 1) and the tokens as text (as ids where
// the model has no tokenizer). InputError for a layer, head or row the model or batch lacks.
struct HeadAttention {
  Tensor pattern;
  std::vector<std::string> tokens;
};
HeadAttention head_attention(const Model& model, const Batch& batch, int layer, int head, int64_t row = 0);

// Mean cross-entropy of the next token over positions [from, to) (to < 0: the end), per row.
std::vector<float> next_token_loss(const Model& model, const Batch& batch, int64_t from, int64_t to = -1);

}  // namespace pathpatch
