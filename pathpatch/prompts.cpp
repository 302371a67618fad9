#include "pathpatch/prompts.hpp"

#include <nlohmann/json.hpp>

#include "graph/error.hpp"
#include "graph/files.hpp"
#include "models/tokenizer.hpp"

namespace pathpatch {

namespace {

using json = nlohmann::json;

inline constexpr uint64_t kMaxPromptFileBytes = 256ull << 20;

// One line's reading: `at` names the file and line in every error.
class Line {
 public:
  Line(const json& j, std::string at) : j_(j), at_(std::move(at)) {}

  // The first of `keys` present, or null.
  const json* field(std::initializer_list<const char*> keys) const {
    for (const char* k : keys)
      if (j_.contains(k)) return &j_.at(k);
    return nullptr;
  }
  std::string text(const json& v, const char* what) const {
    if (!v.is_string()) fail(std::string(what) + " must be a string, not " + v.type_name());
    return v.get<std::string>();
  }
  int32_t id(const json& v, const char* what) const {
    if (!v.is_number_integer()) fail(std::string(what) + " must be an integer token id, not " + v.dump());
    const int64_t x = v.get<int64_t>();
    if (x < 0 || x > INT32_MAX) fail(std::string(what) + " " + std::to_string(x) + " is not a token id");
    return static_cast<int32_t>(x);
  }
  std::vector<int32_t> ids(const json& v, const char* what) const {
    if (!v.is_array() || v.empty()) fail(std::string(what) + " must be a non-empty list of token ids");
    std::vector<int32_t> out;
    for (const json& x : v) out.push_back(id(x, what));
    return out;
  }
  [[noreturn]] void fail(const std::string& msg) const { throw FormatError(at_ + ": " + msg); }

 private:
  const json& j_;
  std::string at_;
};

const Tokenizer& tokenizer_for(const Model& m, const Line& line, const char* what) {
  if (!m.tokenizer())
    line.fail(std::string(what) + " is given as text, but " + m.dir().string() +
              " has no tokenizer; give the ids form of the field");
  return *m.tokenizer();
}

// A prompt from its ids field or its text field (`names` lists the text keys first, then the ids keys).
std::vector<int32_t> prompt(const Model& m, const Line& line, std::initializer_list<const char*> text_keys,
                            std::initializer_list<const char*> id_keys, const char* what, std::string* text) {
  if (const json* t = line.field(text_keys)) *text = line.text(*t, what);
  if (const json* v = line.field(id_keys)) return line.ids(*v, what);
  if (text->empty()) line.fail(std::string("no ") + what + " (a field " + *text_keys.begin() + " or " + *id_keys.begin() + ")");
  return tokenizer_for(m, line, what).encode_prompt(*text);
}

// The answer or distractor token: its id field, or its text as the continuation of the clean prompt.
bool token(const Model& m, const Line& line, const char* text_key, const char* id_key, const std::string& clean_text,
           int32_t* out) {
  if (const json* v = line.field({id_key})) {
    *out = line.id(*v, id_key);
    return true;
  }
  const json* t = line.field({text_key});
  if (!t) return false;
  if (clean_text.empty()) line.fail(std::string(text_key) + " as text needs the clean prompt as text too (or " + id_key + ")");
  try {
    *out = next_token(tokenizer_for(m, line, text_key), clean_text, line.text(*t, text_key));
  } catch (const TokenizerError& e) {
    line.fail(e.what());
  }
  return true;
}

// Whether a line passes every filter.
bool kept(const json& j, const std::vector<PromptFilter>& only) {
  for (const PromptFilter& f : only) {
    if (!j.contains(f.key)) return false;
    const json& v = j.at(f.key);
    if (v.is_string() ? v.get<std::string>() != f.value : v.dump() != f.value) return false;
  }
  return true;
}

std::string filters_text(const std::vector<PromptFilter>& only) {
  std::string s;
  for (const PromptFilter& f : only) s.append(s.empty() ? "" : ", ").append(f.key).append("=").append(f.value);
  return s;
}

}  // namespace

int64_t PromptSet::column(const std::string& name) const {
  auto it = positions.find(name);
  if (it == positions.end()) {
    std::string names;
    for (const auto& [n, rows] : positions) names.append(names.empty() ? "" : ", ").append(n);
    throw InputError("position '" + name + "': the prompt file names " +
                     (names.empty() ? std::string("no positions (fields pos_NAME)") : "the positions " + names));
  }
  std::map<int64_t, size_t> rows_at;  // column -> rows
  for (int64_t c : it->second) ++rows_at[c];
  if (rows_at.size() == 1) return rows_at.begin()->first;
  std::string where;
  for (const auto& [c, n] : rows_at)
    where.append(where.empty() ? "" : ", ").append("column ").append(std::to_string(c)).append(" in ")
        .append(std::to_string(n)).append(" rows");
  throw InputError("position '" + name + "' is " + where +
                   " of the padded batch; a position is one column for every row: keep prompts of one template "
                   "(--where template=..., and order=... where names swap)");
}

PromptFilter PromptFilter::parse(const std::string& key_equals_value) {
  const size_t eq = key_equals_value.find('=');
  if (eq == std::string::npos || eq == 0)
    throw InputError("prompt filter '" + key_equals_value + "': expected FIELD=VALUE, e.g. template=heldout_0");
  return {key_equals_value.substr(0, eq), key_equals_value.substr(eq + 1)};
}

PromptSet parse_prompts(std::string_view text, const std::string& where, const Model& model, size_t limit,
                        const std::vector<PromptFilter>& only) {
  PromptSet set;
  std::vector<std::vector<int32_t>> clean, corrupt;
  std::map<std::string, std::vector<int64_t>>& positions = set.positions;  // in each row's own count, until padded
  size_t number = 0, with_answer = 0, with_wrong = 0;
  size_t start = 0;
  while (start < text.size() && (limit == 0 || clean.size() < limit)) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view raw = text.substr(start, end - start);
    start = end + 1;
    ++number;
    if (raw.find_first_not_of(" \t\r") == std::string_view::npos) continue;  // blank lines
    const std::string at = where + ":" + std::to_string(number);
    json j = json::parse(raw, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw FormatError(at + ": not a JSON object (one per line)");
    if (!kept(j, only)) continue;
    Line line(j, at);
    std::string clean_text, corrupt_text;
    std::vector<int32_t> c = prompt(model, line, {"clean", "prompt"}, {"ids", "clean_ids"}, "clean prompt", &clean_text);
    std::vector<int32_t> k =
        prompt(model, line, {"corrupt", "corrupted"}, {"corrupt_ids", "corrupted_ids"}, "corrupted prompt", &corrupt_text);
    if (c.size() != k.size())
      line.fail("the clean prompt has " + std::to_string(c.size()) + " tokens, the corrupted one " +
                std::to_string(k.size()) + "; patching needs the same length (see `pathpatch tokenize`)");
    int32_t a = 0, w = 0;
    if (token(model, line, "answer", "answer_id", clean_text, &a)) {
      set.answer.push_back(a);
      ++with_answer;
    }
    if (token(model, line, "wrong", "wrong_id", clean_text, &w)) {
      set.wrong.push_back(w);
      ++with_wrong;
    }
    if ((with_answer != 0 && with_answer != clean.size() + 1) || (with_wrong != 0 && with_wrong != clean.size() + 1))
      line.fail("answer and wrong must be on every line or on none (the first line that differs)");
    for (const auto& [key, value] : j.items()) {
      if (key.rfind("pos_", 0) != 0 || key.size() == 4) continue;
      if (!value.is_number_integer() || value.get<int64_t>() < 0)
        line.fail(key + " must be a position (an integer from 0), not " + value.dump());
      const int64_t p = value.get<int64_t>();
      if (p >= static_cast<int64_t>(c.size()))
        line.fail(key + " " + std::to_string(p) + " is past the prompt's " + std::to_string(c.size()) + " tokens");
      std::vector<int64_t>& named = positions[key.substr(4)];
      if (named.size() != clean.size()) line.fail(key + " must be on every line or on none (the first line that differs)");
      named.push_back(p);
    }
    for (const auto& [name, named] : positions)
      if (named.size() != clean.size() + 1)
        line.fail("pos_" + name + " must be on every line or on none (the first line that differs)");
    clean.push_back(std::move(c));
    corrupt.push_back(std::move(k));
    set.texts.push_back(clean_text);
    set.lines.push_back(number);
  }
  if (clean.empty() && !only.empty()) throw FormatError(where + ": no line has " + filters_text(only));
  if (clean.empty()) throw FormatError(where + ": no prompts (one JSON object per line)");
  set.clean = Batch::from_rows(clean, model.pad_id());
  set.corrupted = Batch::from_rows(corrupt, model.pad_id());
  for (auto& [name, named] : positions)
    for (size_t r = 0; r < named.size(); ++r) named[r] += set.clean.seq - static_cast<int64_t>(clean[r].size());
  model.validate(set.clean, where + " (clean prompts)");
  model.validate(set.corrupted, where + " (corrupted prompts)");
  return set;
}

PromptSet read_prompts(const std::filesystem::path& file, const Model& model, size_t limit,
                       const std::vector<PromptFilter>& only) {
  return parse_prompts(files::read(file, kMaxPromptFileBytes, "prompt file"), file.string(), model, limit, only);
}

}  // namespace pathpatch
