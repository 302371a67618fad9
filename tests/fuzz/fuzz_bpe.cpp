// libFuzzer target: the GPT-2 byte-level BPE tokenizer (models/zoo/induction-gpt2's vocab.json +
// merges.txt, loaded once) on arbitrary bytes.
//   - invalid UTF-8 (checked here independently of the tokenizer's own check) must be a TokenizerError;
//   - valid UTF-8 must encode to in-vocabulary ids with decode(encode(s)) == s;
//   - the input read as token ids must decode, or be an InputError for an id outside the vocabulary.
// A mismatch traps (__builtin_trap), as does any other exception escaping.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "graph/error.hpp"
#include "models/tokenizer.hpp"

namespace pp = pathpatch;

namespace {

const pp::Tokenizer& tokenizer() {
  static const std::shared_ptr<const pp::Tokenizer> t = [] {
    const char* dir = std::getenv("PP_FUZZ_TOKENIZER_DIR");
    auto loaded = pp::load_tokenizer(dir ? dir : PP_SOURCE_DIR "/models/zoo/induction-gpt2");
    if (!loaded) __builtin_trap();
    return loaded;
  }();
  return *t;
}

// RFC 3629 well-formed UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF).
bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char c = b(i);
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c <= 0x7F) n = 1;
    else if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c == 0xE0) n = 3, lo = 0xA0;
    else if (c == 0xED) n = 3, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF) n = 3;
    else if (c == 0xF0) n = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) n = 4;
    else if (c == 0xF4) n = 4, hi = 0x8F;
    else return false;
    if (i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      unsigned char x = b(i + k);
      unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
      if (x < l || x > h) return false;
    }
    i += n;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tokenizer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const pp::Tokenizer& tok = tokenizer();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const bool valid = valid_utf8(text);
  if ((pp::detail::invalid_utf8_offset(text) == std::string_view::npos) != valid) __builtin_trap();

  std::vector<int32_t> ids;
  bool refused = false;
  try {
    ids = tok.encode(text);
  } catch (const pp::TokenizerError&) {
    refused = true;
  }
  if (refused == valid) __builtin_trap();  // valid text refused, or invalid text accepted
  if (valid) {
    for (int32_t id : ids)
      if (id < 0 || id >= tok.vocab_size()) __builtin_trap();
    if (tok.decode(ids) != text) __builtin_trap();  // no round trip
    if (size > 0 && ids.empty()) __builtin_trap();
  }

  // The same bytes as little-endian int32 ids (a few of them).
  std::vector<int32_t> raw(std::min<size_t>(size / 4, 64));
  if (!raw.empty()) std::memcpy(raw.data(), data, raw.size() * 4);
  bool in_range = true;
  for (int32_t id : raw) in_range = in_range && id >= 0 && id < tok.vocab_size();
  try {
    std::string s = tok.decode(raw);
    if (!in_range) __builtin_trap();
    for (int32_t id : raw) (void)tok.piece(id);
  } catch (const pp::InputError&) {
    if (in_range) __builtin_trap();
  }
  return 0;
}
