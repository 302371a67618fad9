#pragma once
// Tokenizers: text in, token ids out, and back.
//
//   GPT-2 byte-level BPE (models/tokenizer_bpe.cpp): vocab.json + merges.txt, or a Hugging Face
//     tokenizer.json whose model is BPE with the ByteLevel pre-tokenizer. Ids match OpenAI's encoder.py
//     (and the gpt-3-encoder npm package, checked on tests/data/gpt2_tokenizer_golden.jsonl).
//   Llama sentencepiece (models/tokenizer_sp.cpp): tokenizer.model, through libsentencepiece.
//
// Common rules:
//   - Text is UTF-8. Invalid UTF-8 given to encode() is a TokenizerError naming the byte offset (a
//     byte-wise fallback would give ids that no reference tokenizer gives).
//   - encode() never adds BOS; encode_prompt() adds it where Hugging Face does (adds_bos()).
//   - Special tokens written in the text ("<|endoftext|>", "<s>") are encoded as plain text, as
//     encoder.py and sentencepiece do; to put one in, add its id yourself.
//   - decode() of an id outside [0, vocab_size()) is an InputError naming the id.
//   - All methods are const and safe to call from several threads at once.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pathpatch {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  virtual std::vector<int32_t> encode(std::string_view text) const = 0;  // never adds BOS
  // The bytes the ids stand for. GPT-2: may be invalid UTF-8 if the ids cut a character in two.
  // Sentencepiece: as the library decodes (BOS/EOS give nothing, the first piece's dummy-prefix space
  // is dropped, so decode(encode(s)) == s).
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  // One token for display: GPT-2 "Ġthe" and sentencepiece "▁the" both show as " the". Bytes that are
  // not a whole UTF-8 character show as <0xNN>.
  virtual std::string piece(int32_t id) const = 0;
  virtual int vocab_size() const = 0;
  // GPT-2: the id of <|endoftext|> (Hugging Face's bos_token), -1 if the vocabulary has none.
  // Sentencepiece: the model's bos id (-1 if the model has none).
  virtual int bos_id() const = 0;
  // Whether Hugging Face prepends BOS: LlamaTokenizer does (if the model has a BOS), GPT2Tokenizer not.
  virtual bool adds_bos() const = 0;

  // BOS (if adds_bos()) + encode(text): the ids Hugging Face's tokenizer(text) gives.
  std::vector<int32_t> encode_prompt(std::string_view text) const;
};

// The one token `continuation` adds after `prompt` (an answer " Mary" after "... gave a drink to"),
// found by encoding both: tokenizers treat a leading space differently (GPT-2 makes " Mary" one
// token; sentencepiece alone makes it "▁" "▁Mary"), in context they agree. TokenizerError if the
// continuation is not exactly one more token.
int32_t next_token(const Tokenizer& tok, std::string_view prompt, std::string_view continuation);

// The tokenizer files in a model folder, looked for in this order:
//   vocab.json + merges.txt   GPT-2 byte-level BPE (one without the other is an error)
//   tokenizer.model           sentencepiece (Llama), preferred to a tokenizer.json beside it
//   tokenizer.json            Hugging Face BPE with the ByteLevel pre-tokenizer
// nullptr if the folder has none of them; IoError if the folder does not exist or a file cannot be
// read; TokenizerError for a malformed or unsupported file, naming the file and the line or key.
std::shared_ptr<const Tokenizer> load_tokenizer(const std::filesystem::path& model_dir);

// The loaders behind load_tokenizer, for files that are not in a model folder.
std::shared_ptr<const Tokenizer> load_bpe_tokenizer(const std::filesystem::path& vocab_json,
                                                    const std::filesystem::path& merges_txt);
std::shared_ptr<const Tokenizer> load_hf_bpe_tokenizer(const std::filesystem::path& tokenizer_json);
std::shared_ptr<const Tokenizer> load_sentencepiece_tokenizer(const std::filesystem::path& model_file);

namespace detail {
// Offset of the first byte of `s` that does not start a valid UTF-8 character (no overlong forms,
// surrogates or code points past U+10FFFF), or std::string_view::npos if all of `s` is valid.
std::size_t invalid_utf8_offset(std::string_view s);
}  // namespace detail

}  // namespace pathpatch
