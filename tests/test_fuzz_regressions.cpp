// Inputs found by, or tried while writing, the libFuzzer targets of tests/fuzz: each goes down the
// same code path as its target and must end in a typed pathpatch::Error (or the documented result),
// never a crash, a sanitizer report, a hang or an allocation the input did not pay for.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <fstream>
#include <string>

#include "helpers.hpp"
#include "models/checkpoint.hpp"
#include "models/safetensors.hpp"
#include "models/tokenizer.hpp"
#include "pathpatch/rules.hpp"

namespace pp = pathpatch;
namespace fs = std::filesystem;

namespace {

// A scratch folder of this process, removed when the test ends.
struct Scratch {
  fs::path dir;
  explicit Scratch(const std::string& name) {
    dir = fs::temp_directory_path() / ("pathpatch_fuzzreg_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

void write(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string le64(uint64_t n) {
  std::string s;
  for (int i = 0; i < 8; ++i) s += static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file: the 8-byte length, the header, `data` bytes of zeros.
std::string safetensors(const std::string& header, size_t data = 0) {
  return le64(header.size()) + header + std::string(data, '\0');
}

std::string nested(const std::string& open, const std::string& close, int depth) {
  std::string s;
  s.reserve((open.size() + close.size()) * depth);
  for (int i = 0; i < depth; ++i) s += open;
  for (int i = 0; i < depth; ++i) s += close;
  return s;
}

const std::string kGpt2Config =
    R"({"model_type":"gpt2","n_layer":1,"n_embd":4,"n_head":2,"n_positions":4,"vocab_size":8,"n_inner":8})";

}  // namespace

// ---- fuzz_safetensors ----------------------------------------------------------------------------

TEST_CASE("fuzz: a shape whose byte count wraps around 2^64 is refused", "[fuzz][safetensors]") {
  // 2^31 x 2^31 F32 elements are 2^64 bytes, which wrapped to 0 and matched data_offsets [0, 0]: the
  // tensor was accepted, and loading it borrowed 2^62 floats from an empty data section.
  const std::string f32 = R"({"t":{"dtype":"F32","shape":[2147483648,2147483648],"data_offsets":[0,0]}})";
  const std::string f64 = R"({"t":{"dtype":"F64","shape":[2147483648,1073741824],"data_offsets":[0,0]}})";
  for (const std::string& header : {f32, f64}) {
    CHECK_THROWS_AS(pp::parse_safetensors_header(header, 0, "fuzz"), pp::FormatError);
    CHECK_THROWS_AS(pp::parse_safetensors_header(header, UINT64_MAX, "fuzz"), pp::FormatError);
    Scratch s("wrap");
    write(s.dir / "x.safetensors", safetensors(header));
    CHECK_THROWS_WITH(pp::SafetensorsFile::open(s.dir / "x.safetensors"), Catch::Contains("impossibly large"));
  }
}

TEST_CASE("fuzz: huge shape products are refused before any allocation", "[fuzz][safetensors]") {
  for (const char* shape : {"[1099511627777]", "[1099511627776,1099511627776]", "[4294967296,4294967296,4]",
                            "[65536,65536,65536,65536]", "[18446744073709551615]"}) {
    const std::string header =
        std::string(R"({"t":{"dtype":"BF16","shape":)") + shape + R"(,"data_offsets":[0,16]}})";
    CHECK_THROWS_AS(pp::parse_safetensors_header(header, UINT64_MAX, "fuzz"), pp::FormatError);
  }
  // A zero dimension makes any product empty: accepted, and loads as an empty tensor.
  const std::string empty = R"({"t":{"dtype":"F32","shape":[0,1099511627776,1099511627776],"data_offsets":[0,0]}})";
  Scratch s("zero");
  write(s.dir / "x.safetensors", safetensors(empty));
  pp::SafetensorsFile f = pp::SafetensorsFile::open(s.dir / "x.safetensors");
  CHECK(f.load("t").numel() == 0);
  // Negative, fractional and non-numeric dimensions and offsets.
  for (const char* bad : {R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})",
                          R"({"t":{"dtype":"F32","shape":[1.5],"data_offsets":[0,6]}})",
                          R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})",
                          R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})",
                          R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]}})",
                          R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})"})
    CHECK_THROWS_AS(pp::parse_safetensors_header(bad, 1 << 20, "fuzz"), pp::FormatError);
}

TEST_CASE("fuzz: header lengths past the file are refused", "[fuzz][safetensors]") {
  const std::string ok = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  Scratch s("hdrlen");
  for (uint64_t claimed : {uint64_t{1} << 63, UINT64_MAX, UINT64_MAX - 7, (uint64_t{100} << 20) + 1,
                           uint64_t(ok.size() + 9)}) {
    write(s.dir / "x.safetensors", le64(claimed) + ok + std::string(8, '\0'));
    CHECK_THROWS_WITH(pp::SafetensorsFile::open(s.dir / "x.safetensors"), Catch::Contains("runs past the end"));
  }
  // A length of 0 (an empty header) and one that ends exactly at the end of the file.
  write(s.dir / "x.safetensors", le64(0));
  CHECK_THROWS_AS(pp::SafetensorsFile::open(s.dir / "x.safetensors"), pp::FormatError);
  write(s.dir / "x.safetensors", safetensors("{}"));
  CHECK(pp::SafetensorsFile::open(s.dir / "x.safetensors").entries().empty());
}

TEST_CASE("fuzz: deeply nested JSON in a safetensors header is refused", "[fuzz][safetensors]") {
  constexpr int kDepth = 100000;
  CHECK_THROWS_AS(pp::parse_safetensors_header(nested("[", "]", kDepth), 0, "fuzz"), pp::FormatError);
  const std::string in_shape =
      R"({"t":{"dtype":"F32","shape":[)" + nested("[", "]", kDepth) + R"(],"data_offsets":[0,4]}})";
  CHECK_THROWS_AS(pp::parse_safetensors_header(in_shape, 4, "fuzz"), pp::FormatError);
  const std::string in_meta = R"({"__metadata__":{"k":)" + nested("{\"a\":", "}", kDepth) + "}}";
  CHECK_THROWS_AS(pp::parse_safetensors_header(in_meta, 0, "fuzz"), pp::FormatError);
}

// ---- fuzz_config ---------------------------------------------------------------------------------

TEST_CASE("fuzz: deeply nested JSON in config.json is a ConfigError", "[fuzz][config]") {
  constexpr int kDepth = 100000;
  CHECK_THROWS_AS(pp::ModelConfig::parse(nested("[", "]", kDepth), "fuzz"), pp::ConfigError);
  for (const char* key : {"n_layer", "layer_norm_epsilon", "attn_only", "activation_function"}) {
    const std::string text =
        R"({"model_type":"gpt2","n_embd":4,"n_head":2,"n_positions":4,"vocab_size":8,"n_layer":1,")" +
        std::string(key) + "\":" + nested("[", "]", kDepth) + "}";
    CHECK_THROWS_AS(pp::ModelConfig::parse(text, "fuzz"), pp::ConfigError);
  }
  const std::string rope = R"({"model_type":"llama","num_hidden_layers":1,"hidden_size":4,"num_attention_heads":2,)"
                           R"("intermediate_size":8,"vocab_size":8,"max_position_embeddings":4,"rope_scaling":)" +
                           nested("{\"a\":", "}", kDepth) + "}";
  CHECK_THROWS_AS(pp::ModelConfig::parse(rope, "fuzz"), pp::ConfigError);
}

TEST_CASE("fuzz: the largest accepted sizes do not overflow the parameter count", "[fuzz][config]") {
  // Every size at its 2^30 limit: n_params() multiplies them in 64 bits.
  const std::string big = R"({"model_type":"llama","num_hidden_layers":1073741824,"hidden_size":1073741824,)"
                          R"("num_attention_heads":1073741824,"head_dim":1073741824,"intermediate_size":1073741824,)"
                          R"("vocab_size":1073741824,"max_position_embeddings":1073741824})";
  try {
    pp::ModelConfig c = pp::ModelConfig::parse(big, "fuzz");
    CHECK(c.n_params() > 0);
    CHECK_THAT(c.summary(), Catch::Contains("parameters"));
  } catch (const pp::ConfigError&) {
    SUCCEED("refused as too large");
  }
  for (const char* n : {"1073741825", "2147483648", "-1", "1e3", "9223372036854775807", "18446744073709551616"}) {
    const std::string text = R"({"model_type":"gpt2","n_layer":)" + std::string(n) +
                             R"(,"n_embd":4,"n_head":2,"n_positions":4,"vocab_size":8})";
    CHECK_THROWS_AS(pp::ModelConfig::parse(text, "fuzz"), pp::ConfigError);
  }
}

// ---- fuzz_model_dir ------------------------------------------------------------------------------

namespace {
// kGpt2Config with `key` set to `value`.
std::string gpt2_config_with(const std::string& key, const std::string& value) {
  std::string text = kGpt2Config;
  const std::string from = "\"" + key + "\":";
  size_t at = text.find(from) + from.size();
  return text.replace(at, text.find_first_of(",}", at) - at, value);
}
}  // namespace

TEST_CASE("fuzz: a model folder whose config asks for more than its files hold", "[fuzz][model]") {
  Scratch s("model");
  // Weights that do not match the config: an Error, whatever the config's sizes.
  pp::Checkpoint::random(pp::ModelConfig::parse(kGpt2Config, "tiny"), 1).save(s.dir, kGpt2Config);
  CHECK_NOTHROW(pp::load_model(s.dir));
  for (const char* key : {"n_embd", "n_head", "vocab_size", "n_positions", "n_inner"}) {
    write(s.dir / "config.json", gpt2_config_with(key, "1073741824"));
    CHECK_THROWS_AS(pp::load_model(s.dir), pp::Error);
  }
  // No weights, or weights that are not a safetensors file.
  write(s.dir / "config.json", kGpt2Config);
  fs::remove(s.dir / "model.safetensors");
  CHECK_THROWS_AS(pp::load_model(s.dir), pp::IoError);
  write(s.dir / "model.safetensors", "garbage");
  CHECK_THROWS_AS(pp::load_model(s.dir), pp::FormatError);
  fs::remove(s.dir / "config.json");
  CHECK_THROWS_AS(pp::load_model(s.dir), pp::IoError);
}

// Found by fuzz_model_dir as an out-of-memory: Model's constructor built the graph of all n_layer
// layers before reading one tensor, so a 2 KB folder whose config.json said "n_layer": 1073741824
// made load_model allocate without bound. The weights are now read first.
TEST_CASE("fuzz: a config with 2^30 layers and the weights of one is a WeightError", "[fuzz][model]") {
  Scratch s("layers");
  pp::Checkpoint::random(pp::ModelConfig::parse(kGpt2Config, "tiny"), 1).save(s.dir, kGpt2Config);
  write(s.dir / "config.json", gpt2_config_with("n_layer", "1073741824"));
  CHECK_THROWS_AS(pp::load_model(s.dir), pp::WeightError);
}

// ---- fuzz_bpe ------------------------------------------------------------------------------------

namespace {
const pp::Tokenizer& gpt2_tokenizer() {
  static const std::shared_ptr<const pp::Tokenizer> t = pp::load_tokenizer(pptest::source_dir() / "models/zoo/induction-gpt2");
  return *t;
}
}  // namespace

TEST_CASE("fuzz: 1 MB of one repeated token round-trips", "[fuzz][tokenizer]") {
  const pp::Tokenizer& tok = gpt2_tokenizer();
  for (const std::string& unit : {std::string(" the"), std::string("a"), std::string(" "), std::string("\n"),
                                  std::string("\xe6\x97\xa5"), std::string("!")}) {
    std::string text;
    while (text.size() < (1u << 20)) text += unit;
    std::vector<int32_t> ids = tok.encode(text);
    CHECK(!ids.empty());
    CHECK(ids.size() <= text.size());
    CHECK(tok.decode(ids) == text);
    if (unit == " the") {
      CHECK(ids.size() == text.size() / 4);
      CHECK(ids.front() == ids.back());
    }
  }
}

TEST_CASE("fuzz: invalid UTF-8 is a TokenizerError, not ids", "[fuzz][tokenizer]") {
  const pp::Tokenizer& tok = gpt2_tokenizer();
  for (const std::string& bad : {std::string("\xff"), std::string("ok \xc3\x28"), std::string("\xed\xa0\x80"),
                                 std::string("\xf4\x90\x80\x80"), std::string("\xe2\x82"), std::string("\xc0\xaf"),
                                 std::string(1 << 20, 'a') + "\x80"})
    CHECK_THROWS_AS(tok.encode(bad), pp::TokenizerError);
  CHECK(tok.encode(std::string("\0\0", 2)).size() >= 1);
  CHECK(tok.decode(tok.encode(std::string("a\0b", 3))) == std::string("a\0b", 3));
  CHECK_THROWS_AS(tok.decode({-1}), pp::InputError);
  CHECK_THROWS_AS(tok.decode({tok.vocab_size()}), pp::InputError);
}

TEST_CASE("fuzz: deeply nested JSON in tokenizer files is a TokenizerError", "[fuzz][tokenizer]") {
  Scratch s("tokjson");
  const std::string deep = nested("[", "]", 100000);
  write(s.dir / "vocab.json", "{\"a\": " + deep + "}");
  write(s.dir / "merges.txt", "#version: 0.2\n");
  CHECK_THROWS_AS(pp::load_tokenizer(s.dir), pp::TokenizerError);
  fs::remove(s.dir / "vocab.json");
  fs::remove(s.dir / "merges.txt");
  write(s.dir / "tokenizer.json", R"({"model":{"type":"BPE","vocab":{},"merges":[]},"normalizer":)" + deep + "}");
  CHECK_THROWS_AS(pp::load_tokenizer(s.dir), pp::TokenizerError);
  write(s.dir / "tokenizer.json", R"({"model":{"type":"BPE","vocab":{},"merges":[)" + deep + R"(]},"normalizer":null,)"
                                  R"("pre_tokenizer":{"type":"ByteLevel"}})");
  CHECK_THROWS_AS(pp::load_tokenizer(s.dir), pp::TokenizerError);
}

// ---- fuzz_rules ----------------------------------------------------------------------------------

TEST_CASE("fuzz: nasty path-rule patterns are RuleErrors or compile", "[fuzz][rules]") {
  const pp::Model& m = pptest::model("gpt2");
  auto compile = [&](const std::string& pattern) { pp::CompiledRules(m, 7, pp::PathRules().add(pattern, 1)); };
  // Groups nested past the parser's limit (it recursed once per group: 10000 overflowed the stack).
  for (const std::string& bad : {std::string("("), std::string(")"), std::string("a1 (a0"), std::string("no_such_node"),
                                 std::string("a1.head99"), std::string(10000, '('),
                                 nested("(", ")", 100000).insert(100000, "a1"), nested("(", ")*", 101).insert(101, "a1")})
    CHECK_THROWS_AS(compile(bad), pp::RuleError);
  // fuzz_rules timeout: 52 stars in a row backtracked in O(len^52) against every path name.
  std::string stars_then_q;
  for (int i = 0; i < 40; ++i) stars_then_q += "*?";
  for (const std::string& slow : {std::string(52, '*') + "UUU", std::string(3000, '*') + "U", stars_then_q + "X"})
    CHECK_THROWS_AS(compile(slow), pp::RuleError);
  // Empty alternatives and groups, a bare `*` or `...`: accepted (they match every path).
  for (const std::string& odd : {std::string("|"), std::string("a1 |"), std::string("*"), std::string("a1 ()"),
                                 std::string("..."), std::string("(a0 | a1)* ... ln_final"),
                                 nested("(", ")", 100).insert(100, "a1"), nested("(", ")*", 100).insert(100, "a1")})
    CHECK_NOTHROW(compile(odd));
}
