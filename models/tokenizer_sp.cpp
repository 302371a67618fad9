// Llama's sentencepiece tokenizer: a thin wrapper around libsentencepiece, so that normalisation,
// byte fallback and the dummy-prefix space behave exactly as the library (and so Hugging Face's
// LlamaTokenizer, which calls it) makes them.
#include <sentencepiece_processor.h>

#include <fstream>
#include <sstream>

#include "graph/error.hpp"
#include "graph/files.hpp"
#include "models/tokenizer.hpp"

namespace pathpatch {

namespace {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // `proto`: the bytes of a tokenizer.model; `where` names it in errors.
  SentencePieceTokenizer(const std::string& proto, const std::string& where) : where_(where) {
    auto status = sp_.LoadFromSerializedProto(proto);
    if (!status.ok()) throw TokenizerError(where + ": not a sentencepiece model (" + status.ToString() + ")");
    if (sp_.GetPieceSize() <= 0) throw TokenizerError(where + ": the sentencepiece model has no pieces");
  }

  std::vector<int32_t> encode(std::string_view text) const override {
    // The library would quietly turn invalid UTF-8 into U+FFFD; refuse it, as the GPT-2 tokenizer does.
    if (std::size_t bad = detail::invalid_utf8_offset(text); bad != std::string_view::npos)
      throw TokenizerError("sentencepiece tokenizer: text is not valid UTF-8 at byte " + std::to_string(bad));
    std::vector<int> ids;
    auto status = sp_.Encode(text, &ids);
    if (!status.ok()) throw TokenizerError(where_ + ": encode failed (" + status.ToString() + ")");
    return std::vector<int32_t>(ids.begin(), ids.end());
  }

  // The library drops the dummy-prefix space of the first piece with text (a BOS before it does not
  // count) and turns control ids (BOS, EOS) into nothing, so decode(encode_prompt(s)) == s.
  std::string decode(const std::vector<int32_t>& ids) const override {
    std::vector<int> v;
    v.reserve(ids.size());
    for (int32_t id : ids) v.push_back(check_id(id));
    std::string text;
    auto status = sp_.Decode(v, &text);
    if (!status.ok()) throw TokenizerError(where_ + ": decode failed (" + status.ToString() + ")");
    return text;
  }

  // The piece with its word-boundary mark "▁" (U+2581) shown as a space; byte pieces stay <0xNN>.
  std::string piece(int32_t id) const override {
    const std::string& p = sp_.IdToPiece(check_id(id));
    static const std::string kMark = "\xE2\x96\x81";
    std::string out;
    for (std::size_t i = 0; i < p.size();) {
      if (p.compare(i, kMark.size(), kMark) == 0) {
        out += ' ';
        i += kMark.size();
      } else {
        out += p[i++];
      }
    }
    return out;
  }

  int vocab_size() const override { return sp_.GetPieceSize(); }
  int bos_id() const override { return sp_.bos_id(); }
  // Hugging Face's LlamaTokenizer has add_bos_token=True by default.
  bool adds_bos() const override { return sp_.bos_id() >= 0; }

 private:
  int check_id(int32_t id) const {
    if (id < 0 || id >= vocab_size())
      throw InputError("token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                       std::to_string(vocab_size() - 1) + ")");
    return id;
  }

  std::string where_;
  sentencepiece::SentencePieceProcessor sp_;
};

}  // namespace

std::shared_ptr<const Tokenizer> load_sentencepiece_tokenizer(const std::filesystem::path& model_file) {
  return std::make_shared<SentencePieceTokenizer>(
      files::read(model_file, files::kMaxTokenizerBytes, "sentencepiece model"), model_file.string());
}

}  // namespace pathpatch
