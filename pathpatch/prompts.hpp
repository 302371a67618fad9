#pragma once
// Prompt files: one experiment row per line of JSON (JSONL), as the zoo's eval.jsonl files are.
//
//   {"clean": "When Mary and John went to the store, John gave a drink to", "corrupt": "...Anna gave...",
//    "answer": " Mary", "wrong": " John"}
//   {"prompt": "...", "ids": [1, 396, ...], "corrupt_ids": [1, 396, ...], "answer_id": 39, "wrong_id": 24}
//
// Fields (others are ignored, so a file may carry its own bookkeeping):
//   clean (or prompt)      the clean prompt as text          ids (or clean_ids)  ... as token ids
//   corrupt (or corrupted) the corrupted prompt as text      corrupt_ids         ... as token ids
//   answer, wrong          the answer and the distractor, as the text that follows the clean prompt
//   answer_id, wrong_id    ... as token ids
//   pos_NAME               a named position of the row's prompt, counted from its first token (the
//                          zoo's pos_io, pos_s1, pos_s2): PromptSet::positions["NAME"]
// Ids win over text where a line gives both (they are what the file's author measured). Text needs
// the model's tokenizer (BOS is added where Hugging Face adds it). A row's clean and corrupted
// prompts must have the same number of tokens; rows of different lengths are left-padded into one
// batch, so position -1 is every row's last token. `answer` / `wrong` are on every line or on none.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "graph/batch.hpp"
#include "models/model.hpp"

namespace pathpatch {

struct PromptSet {
  Batch clean, corrupted;            // row r of each from the r-th line read
  std::vector<int32_t> answer, wrong;  // one per row, or empty when the file gives none
  std::vector<std::string> texts;    // the clean prompts as text ("" for a line with ids only)
  std::vector<size_t> lines;         // each row's line number in the file (1-based)
  // Named positions (the file's pos_NAME fields, on every line or on none): per row, the column of
  // the left-padded batch it is.
  std::map<std::string, std::vector<int64_t>> positions;

  // The one column a named position is in every row; InputError for a name the file does not give,
  // or one whose column differs between rows (prompts of several templates: see PromptFilter).
  int64_t column(const std::string& name) const;
};

// Keeps the lines whose field `key` holds `value`: a string equal to it, or a number or boolean
// written as it (`template=heldout_0`, `order=ABBA`). Positions are columns of the padded batch, so
// choosing prompts of one template makes a fixed position one token of every row (IOI's S2).
struct PromptFilter {
  std::string key, value;
  static PromptFilter parse(const std::string& key_equals_value);  // InputError without a '='
};

// Reads at most `limit` rows (0: all) of the lines every filter keeps. FormatError naming the file
// and line for bad JSON, a field of the wrong type, a missing prompt, or clean and corrupted
// prompts of different lengths, and naming the filters when they keep no line; InputError for ids
// the model cannot take; IoError if the file cannot be read.
PromptSet read_prompts(const std::filesystem::path& file, const Model& model, size_t limit = 0,
                       const std::vector<PromptFilter>& only = {});
// The same from text in memory; `where` names it in errors.
PromptSet parse_prompts(std::string_view text, const std::string& where, const Model& model, size_t limit = 0,
                        const std::vector<PromptFilter>& only = {});

}  // namespace pathpatch
