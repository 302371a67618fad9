// GPT-2's byte-level BPE, as OpenAI's encoder.py does it:
//   1. pre-tokenize: split the text with GPT-2's regex (contractions, letter runs, number runs,
//      punctuation runs, whitespace), each piece keeping at most one leading space;
//   2. spell each piece's UTF-8 bytes with GPT-2's byte-to-unicode table (every byte a printable
//      symbol, e.g. ' ' is 'Ġ');
//   3. BPE: repeatedly merge the adjacent pair with the lowest merge rank, until none has a rank;
//   4. look the resulting symbols up in the vocabulary.
// Also load_tokenizer (the folder rules) and Tokenizer::encode_prompt, which both tokenizers share.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <new>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>
#include <unordered_map>

#include "graph/error.hpp"
#include "graph/files.hpp"
#include "models/json_text.hpp"
#include "models/tokenizer.hpp"

namespace pathpatch {

namespace fs = std::filesystem;
using nlohmann::json;

// ---- UTF-8 ----

namespace {

// Length of the valid UTF-8 character starting at s[i], or 0 if the bytes there are not one.
int utf8_char_length(std::string_view s, std::size_t i) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  if (c < 0x80) return 1;
  int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
  if (len == 0 || c > 0xF4 || i + len > s.size()) return 0;
  uint32_t cp = c & (0x7F >> len);
  for (int k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

uint32_t decode_code_point(std::string_view s, std::size_t i, int len) {
  auto c = static_cast<unsigned char>(s[i]);
  if (len == 1) return c;
  uint32_t cp = c & (0x7F >> len);
  for (int k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {  // GPT-2's symbols are all below U+0800; this branch is for completeness
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Bytes as text for display: valid characters as they are, any other byte as <0xNN>.
std::string printable(std::string_view bytes) {
  std::string out;
  for (std::size_t i = 0; i < bytes.size();) {
    int len = utf8_char_length(bytes, i);
    if (len > 0) {
      out.append(bytes.substr(i, len));
      i += len;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "<0x%02X>", static_cast<unsigned char>(bytes[i]));
      out += buf;
      i += 1;
    }
  }
  return out;
}

}  // namespace

std::size_t detail::invalid_utf8_offset(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    int len = utf8_char_length(s, i);
    if (len == 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

// ---- GPT-2's byte-to-unicode table ----

namespace {

// encoder.py's bytes_to_unicode(): printable Latin-1 bytes stand for themselves; the other 68 bytes
// (controls, space, DEL, NBSP, soft hyphen) are moved, in byte order, to U+0100.. so that no symbol is
// whitespace or a control character and merges.txt can be split on spaces.
std::array<uint32_t, 256> byte_to_code_point() {
  std::array<uint32_t, 256> table{};
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    table[b] = printable ? b : next++;
  }
  return table;
}

const std::array<uint32_t, 256>& byte_table() {
  static const std::array<uint32_t, 256> table = byte_to_code_point();
  return table;
}

std::string byte_symbol(unsigned char b) {
  std::string s;
  append_utf8(s, byte_table()[b]);
  return s;
}

// A token's GPT-2 spelling back to the bytes it stands for. Characters that are not byte symbols
// (only in added special tokens, if ever) keep their own UTF-8 bytes.
std::string spelling_to_bytes(std::string_view spelling) {
  static const std::unordered_map<uint32_t, char> to_byte = [] {
    std::unordered_map<uint32_t, char> m;
    for (int b = 0; b < 256; ++b) m[byte_table()[b]] = static_cast<char>(b);
    return m;
  }();
  std::string out;
  for (std::size_t i = 0; i < spelling.size();) {
    int len = utf8_char_length(spelling, i);
    if (len == 0) {  // not UTF-8 at all: keep the byte (the vocabulary was checked to be JSON text)
      out += spelling[i++];
      continue;
    }
    auto it = to_byte.find(decode_code_point(spelling, i, len));
    if (it != to_byte.end()) {
      out += it->second;
    } else {
      out.append(spelling.substr(i, len));
    }
    i += len;
  }
  return out;
}

// ---- the pre-tokenizer ----

// GPT-2's pattern, with \s spelled out as ECMAScript's whitespace so that the ids match the JS
// reference: PCRE2's \s (with UCP) would also take U+0085 and U+180E, and not U+FEFF. OpenAI's
// encoder.py (Python `regex`) may differ again on these three rare characters.
constexpr const char* kWhitespace =
    R"(\t\n\x{0B}\f\r \x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\x{FEFF})";

std::string gpt2_pattern() {
  std::string ws = kWhitespace;
  return R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^)" + ws + R"(\p{L}\p{N}]+|[)" + ws + "]+(?![^" + ws +
         "])|[" + ws + "]+";
}

class PreTokenizer {
 public:
  PreTokenizer() {
    int err = 0;
    PCRE2_SIZE err_offset = 0;
    std::string pattern = gpt2_pattern();
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(), PCRE2_UTF | PCRE2_UCP,
                          &err, &err_offset, nullptr);
    if (!code_) throw InternalError("GPT-2 pre-tokenizer pattern does not compile: " + message(err));
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // if JIT is unavailable, matching still works
  }
  ~PreTokenizer() { pcre2_code_free(code_); }
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // Calls fn(piece) for each piece of `text`, in order; the pieces cover the text exactly.
  // `text` must already be valid UTF-8: it is not checked again (that would be quadratic).
  template <class Fn>
  void split(std::string_view text, Fn&& fn) const {
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
        pcre2_match_data_create_from_pattern(code_, nullptr), &pcre2_match_data_free);
    if (!md) throw std::bad_alloc();
    auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    for (std::size_t pos = 0; pos < text.size();) {
      int rc = pcre2_match(code_, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md.get(), nullptr);
      if (rc < 0) throw TokenizerError("GPT-2 pre-tokenizer failed at byte " + std::to_string(pos) + ": " + message(rc));
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
      // Every character matches one alternative, so the matches tile the text.
      PP_CHECK(ov[0] == pos && ov[1] > pos, "GPT-2 pre-tokenizer skipped text at byte " + std::to_string(pos));
      fn(text.substr(pos, ov[1] - pos));
      pos = ov[1];
    }
  }

 private:
  static std::string message(int code) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(code, buf, sizeof buf);
    return reinterpret_cast<const char*>(buf);
  }
  pcre2_code* code_ = nullptr;
};

// ---- the tokenizer ----

struct MergeLine {
  std::string left, right;
  std::string where;  // "merges.txt line 7", for errors
};

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

class BpeTokenizer final : public Tokenizer {
 public:
  // `spellings`: token id -> GPT-2 spelling. Throws TokenizerError naming `vocab_name` or the merge's
  // `where` if the vocabulary lacks a byte symbol or a merge's parts or result.
  BpeTokenizer(std::vector<std::string> spellings, const std::vector<MergeLine>& merges, const std::string& vocab_name)
      : spellings_(std::move(spellings)) {
    std::unordered_map<std::string, int32_t> id_of;
    for (std::size_t i = 0; i < spellings_.size(); ++i) id_of.emplace(spellings_[i], static_cast<int32_t>(i));
    for (int b = 0; b < 256; ++b) {
      auto it = id_of.find(byte_symbol(static_cast<unsigned char>(b)));
      if (it == id_of.end()) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02X", b);
        throw TokenizerError(vocab_name + ": no token for byte " + hex + " (spelled '" + byte_symbol(b) +
                             "'); a GPT-2 byte-level vocabulary has one for each of the 256 bytes");
      }
      byte_ids_[b] = it->second;
    }
    auto lookup = [&](const std::string& s, const MergeLine& m, const char* role) {
      auto it = id_of.find(s);
      if (it == id_of.end())
        throw TokenizerError(m.where + ": merge '" + m.left + " " + m.right + "': its " + role + " '" + s +
                             "' is not in " + vocab_name);
      return it->second;
    };
    for (std::size_t rank = 0; rank < merges.size(); ++rank) {
      const MergeLine& m = merges[rank];
      int32_t l = lookup(m.left, m, "left part"), r = lookup(m.right, m, "right part");
      int32_t result = lookup(m.left + m.right, m, "result");
      // A pair listed twice keeps its later rank, as encoder.py's dict(zip(merges, ranks)) does.
      merges_[pair_key(l, r)] = Merge{static_cast<int32_t>(rank), result};
    }
    bytes_.reserve(spellings_.size());
    for (const std::string& s : spellings_) bytes_.push_back(spelling_to_bytes(s));
    auto eot = id_of.find("<|endoftext|>");
    bos_ = eot == id_of.end() ? -1 : eot->second;
  }

  std::vector<int32_t> encode(std::string_view text) const override {
    if (std::size_t bad = detail::invalid_utf8_offset(text); bad != std::string_view::npos)
      throw TokenizerError("GPT-2 tokenizer: text is not valid UTF-8 at byte " + std::to_string(bad));
    std::vector<int32_t> ids;
    pre_.split(text, [&](std::string_view word) { append_word(word, ids); });
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string out;
    for (int32_t id : ids) out += bytes_[check_id(id)];
    return out;
  }

  std::string piece(int32_t id) const override { return printable(bytes_[check_id(id)]); }
  int vocab_size() const override { return static_cast<int>(spellings_.size()); }
  int bos_id() const override { return bos_; }
  bool adds_bos() const override { return false; }

 private:
  struct Merge {
    int32_t rank;
    int32_t result;
  };

  std::size_t check_id(int32_t id) const {
    if (id < 0 || id >= vocab_size())
      throw InputError("token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                       std::to_string(vocab_size() - 1) + ")");
    return static_cast<std::size_t>(id);
  }

  const Merge* find_merge(int32_t left, int32_t right) const {
    auto it = merges_.find(pair_key(left, right));
    return it == merges_.end() ? nullptr : &it->second;
  }

  // Appends the ids of one pre-tokenized word, from the cache when it has been seen before.
  void append_word(std::string_view word, std::vector<int32_t>& out) const {
    constexpr std::size_t kMaxCachedWord = 64, kMaxCacheEntries = 100000;
    bool cacheable = word.size() <= kMaxCachedWord;
    if (cacheable) {
      std::lock_guard<std::mutex> lock(cache_mutex_);
      if (auto it = cache_.find(std::string(word)); it != cache_.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<int32_t> ids = bpe(word);
    out.insert(out.end(), ids.begin(), ids.end());
    if (cacheable) {
      std::lock_guard<std::mutex> lock(cache_mutex_);
      if (cache_.size() >= kMaxCacheEntries) cache_.clear();  // bounded memory on endless input
      cache_.emplace(std::string(word), std::move(ids));
    }
  }

  // The merges of one word. encoder.py finds the lowest-ranked pair, merges every occurrence of it
  // left to right, and starts again: quadratic in the word's length, which CJK text (no spaces, so
  // one word per sentence) makes long. Here the word is a linked list and the candidate pairs sit in
  // a heap ordered by (rank, position), which gives the same merges in O(n log n): all occurrences of
  // one rank are taken together, left to right, before the pairs they create are considered.
  std::vector<int32_t> bpe(std::string_view word) const {
    const int n = static_cast<int>(word.size());
    std::vector<int32_t> id(n), next(n), prev(n);
    for (int i = 0; i < n; ++i) {
      id[i] = byte_ids_[static_cast<unsigned char>(word[i])];
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    struct Candidate {
      int32_t rank, pos, left, right;  // the pair (left, right) starting at node `pos`
      bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
    auto consider = [&](int pos, std::vector<Candidate>& to) {
      if (pos < 0 || next[pos] < 0) return;
      if (const Merge* m = find_merge(id[pos], id[next[pos]])) to.push_back({m->rank, pos, id[pos], id[next[pos]]});
    };
    // A node's id only changes by growing into a longer token, so a candidate whose two ids still
    // match is still the pair it was.
    auto still_valid = [&](const Candidate& c) {
      return id[c.pos] == c.left && next[c.pos] >= 0 && id[next[c.pos]] == c.right;
    };

    std::vector<Candidate> fresh;
    for (int i = 0; i + 1 < n; ++i) consider(i, fresh);
    for (const Candidate& c : fresh) heap.push(c);
    std::vector<Candidate> batch;
    while (!heap.empty()) {
      if (!still_valid(heap.top())) {
        heap.pop();
        continue;
      }
      const int32_t rank = heap.top().rank;
      batch.clear();
      while (!heap.empty() && heap.top().rank == rank) {
        batch.push_back(heap.top());
        heap.pop();
      }
      fresh.clear();
      for (const Candidate& c : batch) {
        if (!still_valid(c)) continue;  // overlapped by the previous merge ("a a a" -> "aa a")
        const int right = next[c.pos];
        id[c.pos] = find_merge(c.left, c.right)->result;
        next[c.pos] = next[right];
        if (next[right] >= 0) prev[next[right]] = c.pos;
        id[right] = -1;
        consider(prev[c.pos], fresh);
        consider(c.pos, fresh);
      }
      for (const Candidate& c : fresh) heap.push(c);
    }
    std::vector<int32_t> out;
    for (int i = 0; i >= 0 && n > 0; i = next[i]) out.push_back(id[i]);
    return out;
  }

  std::vector<std::string> spellings_;  // id -> GPT-2 spelling ("Ġthe")
  std::vector<std::string> bytes_;      // id -> the bytes it stands for (" the")
  std::array<int32_t, 256> byte_ids_{};
  std::unordered_map<uint64_t, Merge> merges_;  // (left id, right id) -> rank and result
  int32_t bos_ = -1;
  PreTokenizer pre_;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

// ---- reading the files ----


std::string read_file(const fs::path& path) { return files::read(path, files::kMaxTokenizerBytes, "tokenizer file"); }

json parse_json(const fs::path& path) {
  std::string text = read_file(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw TokenizerError(path.string() + ": not valid JSON (" + e.what() + ")");
  }
}

// {"token": id, ...} -> spellings by id. Ids must be 0..N-1, each once.
std::vector<std::string> vocab_from_json(const json& vocab, const std::string& where) {
  if (!vocab.is_object()) throw TokenizerError(where + ": expected an object {\"token\": id, ...}");
  const std::size_t n = vocab.size();
  std::vector<std::string> spellings(n);
  std::vector<bool> seen(n, false);
  for (const auto& [token, value] : vocab.items()) {
    std::string key = where + ": key \"" + token + "\"";
    if (!value.is_number_integer()) throw TokenizerError(key + ": the id must be an integer, got " + detail::json_text(value));
    int64_t id = value.get<int64_t>();
    if (id < 0 || static_cast<uint64_t>(id) >= n)
      throw TokenizerError(key + ": id " + std::to_string(id) + " is outside 0.." + std::to_string(n - 1) +
                           " (the ids must number the " + std::to_string(n) + " tokens without gaps)");
    if (seen[id])
      throw TokenizerError(key + ": id " + std::to_string(id) + " is also the id of \"" + spellings[id] + "\"");
    seen[id] = true;
    spellings[id] = token;
  }
  return spellings;
}

// "left right" -> a merge; anything else is an error naming `where`.
MergeLine merge_from_text(std::string_view line, std::string where) {
  std::size_t space = line.find(' ');
  if (space == std::string_view::npos || space == 0 || space + 1 >= line.size() ||
      line.find(' ', space + 1) != std::string_view::npos)
    throw TokenizerError(where + ": expected two symbols separated by one space, got '" + std::string(line) + "'");
  return MergeLine{std::string(line.substr(0, space)), std::string(line.substr(space + 1)), std::move(where)};
}

std::vector<MergeLine> merges_from_text(const std::string& text, const std::string& where) {
  std::vector<MergeLine> merges;
  std::istringstream in(text);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (number == 1 && line.rfind("#version", 0) == 0) continue;  // "#version: 0.2"
    merges.push_back(merge_from_text(line, where + " line " + std::to_string(number)));
  }
  return merges;
}

// tokenizer.json's model.merges: ["a b", ...] (older) or [["a", "b"], ...] (newer).
std::vector<MergeLine> merges_from_json(const json& merges, const std::string& where) {
  if (!merges.is_array()) throw TokenizerError(where + ": expected an array of merges");
  std::vector<MergeLine> out;
  for (std::size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    std::string at = where + "[" + std::to_string(i) + "]";
    if (m.is_string()) {
      out.push_back(merge_from_text(m.get<std::string>(), at));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      out.push_back(MergeLine{m[0].get<std::string>(), m[1].get<std::string>(), at});
    } else {
      throw TokenizerError(at + ": expected \"left right\" or [\"left\", \"right\"], got " + detail::json_text(m));
    }
  }
  return out;
}

// j[key] if j is an object that has it, else nullptr.
const json* member(const json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

std::string string_member(const json& j, const char* key) {
  const json* v = member(j, key);
  return v && v->is_string() ? v->get<std::string>() : std::string();
}

bool bool_member(const json& j, const char* key, bool fallback) {
  const json* v = member(j, key);
  return v && v->is_boolean() ? v->get<bool>() : fallback;
}

// Refuses tokenizer.json settings that would make GPT-2's pipeline give other ids than the file means.
void check_byte_level_bpe(const json& j, const std::string& where) {
  const json* model = member(j, "model");
  if (!model || string_member(*model, "type") != "BPE")
    throw TokenizerError(where + ": key \"model.type\" must be \"BPE\" (got " +
                         (model && member(*model, "type") ? detail::json_text(*member(*model, "type")) : "none") +
                         "); a sentencepiece model should come as tokenizer.model");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (!string_member(*model, key).empty())
      throw TokenizerError(where + ": key \"model." + key + "\" is not supported (GPT-2 byte-level BPE has none)");
  if (const json* norm = member(j, "normalizer"); norm && !norm->is_null())
    throw TokenizerError(where + ": key \"normalizer\" must be null for GPT-2 byte-level BPE, got " + detail::json_text(*norm));
  const json* pre = member(j, "pre_tokenizer");
  if (!pre || string_member(*pre, "type") != "ByteLevel")
    throw TokenizerError(where + ": key \"pre_tokenizer\" must be {\"type\": \"ByteLevel\", ...}, got " +
                         (pre ? detail::json_text(*pre) : "none") + " (only GPT-2's byte-level pre-tokenizer is supported)");
  if (bool_member(*pre, "add_prefix_space", false) || !bool_member(*pre, "use_regex", true))
    throw TokenizerError(where + ": pre_tokenizer needs add_prefix_space false and use_regex true, as GPT-2's");
}

}  // namespace

// ---- public entry points ----

std::vector<int32_t> Tokenizer::encode_prompt(std::string_view text) const {
  std::vector<int32_t> ids;
  if (adds_bos() && bos_id() >= 0) ids.push_back(bos_id());
  std::vector<int32_t> rest = encode(text);
  ids.insert(ids.end(), rest.begin(), rest.end());
  return ids;
}

std::shared_ptr<const Tokenizer> load_bpe_tokenizer(const fs::path& vocab_json, const fs::path& merges_txt) {
  std::vector<std::string> spellings = vocab_from_json(parse_json(vocab_json), vocab_json.string());
  std::vector<MergeLine> merges = merges_from_text(read_file(merges_txt), merges_txt.string());
  return std::make_shared<BpeTokenizer>(std::move(spellings), merges, vocab_json.string());
}

std::shared_ptr<const Tokenizer> load_hf_bpe_tokenizer(const fs::path& tokenizer_json) {
  const std::string where = tokenizer_json.string();
  json j = parse_json(tokenizer_json);
  if (!j.is_object()) throw TokenizerError(where + ": not a JSON object");
  check_byte_level_bpe(j, where);
  const json& model = j["model"];
  const json* vocab = member(model, "vocab");
  const json* merges_json = member(model, "merges");
  if (!vocab) throw TokenizerError(where + ": missing key \"model.vocab\"");
  if (!merges_json) throw TokenizerError(where + ": missing key \"model.merges\"");
  std::vector<std::string> spellings = vocab_from_json(*vocab, where + " model.vocab");
  std::vector<MergeLine> merges = merges_from_json(*merges_json, where + " model.merges");
  return std::make_shared<BpeTokenizer>(std::move(spellings), merges, where + " model.vocab");
}

std::shared_ptr<const Tokenizer> load_tokenizer(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw IoError(dir.string() + ": not a folder");
  const fs::path vocab = dir / "vocab.json", merges = dir / "merges.txt";
  if (files::exists(vocab) || files::exists(merges)) {
    if (!files::exists(merges)) throw TokenizerError(vocab.string() + " needs merges.txt beside it, which is missing");
    if (!files::exists(vocab)) throw TokenizerError(merges.string() + " needs vocab.json beside it, which is missing");
    return load_bpe_tokenizer(vocab, merges);
  }
  if (files::exists(dir / "tokenizer.model")) return load_sentencepiece_tokenizer(dir / "tokenizer.model");
  if (files::exists(dir / "tokenizer.json")) return load_hf_bpe_tokenizer(dir / "tokenizer.json");
  return nullptr;
}

int32_t next_token(const Tokenizer& tok, std::string_view prompt, std::string_view continuation) {
  std::vector<int32_t> base = tok.encode(prompt);
  std::vector<int32_t> both = tok.encode(std::string(prompt) + std::string(continuation));
  const bool one_more = both.size() == base.size() + 1 && std::equal(base.begin(), base.end(), both.begin());
  if (!one_more)
    throw TokenizerError("'" + std::string(continuation) + "' after '" + std::string(prompt) + "' is not one token (" +
                         std::to_string(static_cast<long>(both.size()) - static_cast<long>(base.size())) +
                         " more tokens, or the prompt's last token changed); choose a single-token answer");
  return both.back();
}

}  // namespace pathpatch
