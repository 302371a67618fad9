// Tokenizers against golden ids: GPT-2 BPE against the gpt-3-encoder JS reference
// (tools/gpt2_tokenizer_golden.js), sentencepiece against the Python library (tools/make_tiny_sp.py).
#include <atomic>
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <unistd.h>

#include "helpers.hpp"
#include "models/tokenizer.hpp"

namespace pp = pathpatch;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path kGpt2Dir = pptest::source_dir() / "models" / "zoo" / "induction-gpt2";
const fs::path kTinySp = pptest::source_dir() / "tests" / "data" / "tiny-sp.model";

struct Golden {
  std::string text;
  std::vector<int32_t> ids;
  json line;  // the whole object, for extra keys
};

std::vector<Golden> read_golden(const std::string& name) {
  fs::path path = pptest::source_dir() / "tests" / "data" / name;
  std::ifstream in(path);
  REQUIRE(in);
  std::vector<Golden> out;
  std::string line;
  while (std::getline(in, line)) {
    json j = json::parse(line);
    out.push_back({j.at("text").get<std::string>(), j.at("ids").get<std::vector<int32_t>>(), j});
  }
  return out;
}

const pp::Tokenizer& gpt2() {
  static std::shared_ptr<const pp::Tokenizer> t = pp::load_tokenizer(kGpt2Dir);
  REQUIRE(t);
  return *t;
}

// A fresh folder under the temp dir, removed when the test ends.
struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() /
           ("pathpatch-tokenizer-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path write(const std::string& name, const std::string& content) const {
    std::ofstream(path / name, std::ios::binary) << content;
    return path / name;
  }
};

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A small byte-level vocabulary: GPT-2's 256 byte symbols (its ids 0..255) plus the results of
// `merges`, numbered after them in order.
json tiny_vocab(const std::vector<std::pair<std::string, std::string>>& merges) {
  json full = json::parse(read_text(kGpt2Dir / "vocab.json"));
  json v = json::object();
  for (auto& [token, id] : full.items())
    if (id.get<int>() < 256) v[token] = id;
  int next = 256;
  for (auto& [l, r] : merges) v[l + r] = next++;
  return v;
}

std::string merges_text(const std::vector<std::pair<std::string, std::string>>& merges) {
  std::string s = "#version: 0.2\n";
  for (auto& [l, r] : merges) s += l + " " + r + "\n";
  return s;
}

// The message of the TokenizerError that `fn` throws, or "(no error)".
template <class Fn>
std::string tokenizer_error(Fn&& fn) {
  try {
    fn();
  } catch (const pp::TokenizerError& e) {
    return e.what();
  }
  return "(no error)";
}

std::string escaped(const std::string& s) { return json(s).dump(); }

}  // namespace

// ---- GPT-2 ----

TEST_CASE("GPT-2 BPE gives the reference ids on the golden corpus", "[tokenizer]") {
  const pp::Tokenizer& tok = gpt2();
  std::vector<Golden> golden = read_golden("gpt2_tokenizer_golden.jsonl");
  REQUIRE(golden.size() >= 1000);
  int wrong_ids = 0, wrong_text = 0;
  for (const Golden& g : golden) {
    std::vector<int32_t> ids = tok.encode(g.text);
    if (ids != g.ids && ++wrong_ids <= 5)
      FAIL_CHECK("encode(" << escaped(g.text) << ") = " << json(ids).dump() << ", expected " << json(g.ids).dump());
    std::string back = tok.decode(g.ids);
    if (back != g.text && ++wrong_text <= 5)
      FAIL_CHECK("decode(ids of " << escaped(g.text) << ") = " << escaped(back));
  }
  INFO(golden.size() << " strings");
  CHECK(wrong_ids == 0);
  CHECK(wrong_text == 0);
}

TEST_CASE("GPT-2 tokenizer facts", "[tokenizer]") {
  const pp::Tokenizer& tok = gpt2();
  CHECK(tok.vocab_size() == 50257);
  CHECK(tok.bos_id() == 50256);  // <|endoftext|>
  CHECK_FALSE(tok.adds_bos());
  CHECK(tok.encode_prompt("Hello world") == tok.encode("Hello world"));
  CHECK(tok.encode("Hello world") == std::vector<int32_t>{15496, 995});
  CHECK(tok.piece(995) == " world");       // "Ġworld"
  CHECK(tok.piece(50256) == "<|endoftext|>");
  CHECK(tok.decode({50256}) == "<|endoftext|>");
  // Special tokens in the text are plain text, as in encoder.py.
  CHECK(tok.encode("<|endoftext|>").size() > 1);
  // A token that is part of a character shows its bytes.
  std::vector<int32_t> emoji = tok.encode("😀");
  REQUIRE(emoji.size() > 1);
  CHECK_THAT(tok.piece(emoji[0]), Catch::StartsWith("<0xF0>"));
  CHECK(tok.decode(emoji) == "😀");
}

TEST_CASE("GPT-2 tokenizer refuses invalid UTF-8 and unknown ids", "[tokenizer]") {
  const pp::Tokenizer& tok = gpt2();
  CHECK_THAT(tokenizer_error([&] { tok.encode("ok \xff bad"); }), Catch::Contains("not valid UTF-8 at byte 3"));
  CHECK_THROWS_AS(tok.encode("\xc3"), pp::TokenizerError);              // truncated
  CHECK_THROWS_AS(tok.encode("\xc0\xaf"), pp::TokenizerError);          // overlong '/'
  CHECK_THROWS_AS(tok.encode("\xed\xa0\x80"), pp::TokenizerError);      // a surrogate
  CHECK_THROWS_AS(tok.decode({50257}), pp::InputError);
  CHECK_THROWS_AS(tok.decode({-1}), pp::InputError);
  CHECK_THROWS_AS(tok.piece(50257), pp::InputError);
}

TEST_CASE("GPT-2 BPE is not quadratic in long input", "[tokenizer]") {
  const pp::Tokenizer& tok = gpt2();
  // One 'word' of 60k letters (CJK has no spaces), one of 100k punctuation marks, and 400 KB of text.
  std::string cjk;
  for (int i = 0; i < 20000; ++i) cjk += i % 3 ? "中" : "文";
  std::string dots(100000, '.');
  std::string prose;
  while (prose.size() < 400000) prose += "When Mary and John went to the store, John gave a drink to Mary. ";
  for (const std::string& s : {cjk, dots, prose}) {
    std::vector<int32_t> ids = tok.encode(s);
    CHECK(ids.size() < s.size());
    CHECK(tok.decode(ids) == s);
  }
}

TEST_CASE("GPT-2 tokenizer can be used from several threads", "[tokenizer]") {
  const pp::Tokenizer& tok = gpt2();
  std::vector<Golden> golden = read_golden("gpt2_tokenizer_golden.jsonl");
  std::atomic<int> wrong{0};
  auto work = [&](int start) {
    for (std::size_t i = start; i < golden.size(); i += 2)
      if (tok.encode(golden[i].text) != golden[i].ids) ++wrong;
  };
  std::thread a(work, 0), b(work, 1);
  a.join();
  b.join();
  CHECK(wrong == 0);
}

TEST_CASE("BPE merges as encoder.py: all pairs of the lowest rank, left to right", "[tokenizer]") {
  TempDir dir;
  std::vector<std::pair<std::string, std::string>> merges = {{"a", "a"}, {"b", "c"}, {"aa", "bc"}};
  dir.write("vocab.json", tiny_vocab(merges).dump());
  dir.write("merges.txt", merges_text(merges));
  auto tok = pp::load_tokenizer(dir.path);
  REQUIRE(tok);
  auto pieces = [&](const std::string& text) {
    std::vector<std::string> out;
    for (int32_t id : tok->encode(text)) out.push_back(tok->piece(id));
    return out;
  };
  using V = std::vector<std::string>;
  CHECK(pieces("aaa") == V{"aa", "a"});  // overlapping pairs: the leftmost wins
  CHECK(pieces("aaaa") == V{"aa", "aa"});
  CHECK(pieces("aabc") == V{"aabc"});
  CHECK(pieces("abc") == V{"a", "bc"});
  CHECK(pieces("aaabc") == V{"aa", "a", "bc"});  // not "a" "aabc": "a a" was taken left to right first
  CHECK(pieces(" aa") == V{" ", "aa"});
}

TEST_CASE("tokenizer.json with a byte-level BPE model gives GPT-2's ids", "[tokenizer]") {
  json vocab = json::parse(read_text(kGpt2Dir / "vocab.json"));
  std::string merges_txt = read_text(kGpt2Dir / "merges.txt");
  std::vector<std::string> merge_strings;
  json merge_pairs = json::array();
  std::istringstream in(merges_txt);
  std::string line;
  std::getline(in, line);  // #version
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    merge_strings.push_back(line);
    merge_pairs.push_back({line.substr(0, line.find(' ')), line.substr(line.find(' ') + 1)});
  }
  std::vector<Golden> golden = read_golden("gpt2_tokenizer_golden.jsonl");
  for (bool pairs : {false, true}) {  // older files: "a b"; newer: ["a", "b"]
    json j = {{"version", "1.0"},
              {"normalizer", nullptr},
              {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}}},
              {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", pairs ? merge_pairs : json(merge_strings)}}}};
    TempDir dir;
    dir.write("tokenizer.json", j.dump());
    auto tok = pp::load_tokenizer(dir.path);
    REQUIRE(tok);
    CHECK(tok->vocab_size() == 50257);
    for (std::size_t i = 0; i < golden.size(); i += 7) CHECK(tok->encode(golden[i].text) == golden[i].ids);
  }
}

TEST_CASE("tokenizer.json that is not GPT-2 byte-level BPE is refused", "[tokenizer]") {
  TempDir dir;
  json base = {{"normalizer", nullptr},
               {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
               {"model", {{"type", "BPE"}, {"vocab", tiny_vocab({})}, {"merges", json::array()}}}};
  auto error_for = [&](const json& j) {
    dir.write("tokenizer.json", j.dump());
    return tokenizer_error([&] { pp::load_tokenizer(dir.path); });
  };
  CHECK(error_for(base) == "(no error)");
  json unigram = base;
  unigram["model"]["type"] = "Unigram";
  CHECK_THAT(error_for(unigram), Catch::Contains("tokenizer.json") && Catch::Contains("model.type"));
  json metaspace = base;
  metaspace["pre_tokenizer"] = {{"type", "Metaspace"}};
  CHECK_THAT(error_for(metaspace), Catch::Contains("tokenizer.json") && Catch::Contains("pre_tokenizer"));
  json prefix = base;
  prefix["pre_tokenizer"]["add_prefix_space"] = true;
  CHECK_THAT(error_for(prefix), Catch::Contains("add_prefix_space"));
  json bad_merge = base;
  bad_merge["model"]["merges"] = {"a b c"};
  CHECK_THAT(error_for(bad_merge), Catch::Contains("model.merges[0]"));
  json no_vocab = base;
  no_vocab["model"].erase("vocab");
  CHECK_THAT(error_for(no_vocab), Catch::Contains("model.vocab"));
}

// ---- sentencepiece ----

TEST_CASE("sentencepiece gives the Python library's ids, and BOS as Hugging Face adds it", "[tokenizer]") {
  auto tok = pp::load_sentencepiece_tokenizer(kTinySp);
  REQUIRE(tok);
  CHECK(tok->vocab_size() == 459);
  CHECK(tok->bos_id() == 1);
  CHECK(tok->adds_bos());
  std::vector<Golden> golden = read_golden("tiny_sp_golden.jsonl");
  REQUIRE(golden.size() >= 40);
  for (const Golden& g : golden) {
    INFO("text " << escaped(g.text));
    CHECK(tok->encode(g.text) == g.ids);
    CHECK(tok->encode_prompt(g.text) == g.line.at("hf_ids").get<std::vector<int32_t>>());
    std::string decoded = g.line.at("decoded").get<std::string>();
    CHECK(tok->decode(g.ids) == decoded);
    CHECK(tok->decode(tok->encode_prompt(g.text)) == decoded);  // BOS gives nothing
  }
}

TEST_CASE("sentencepiece decode and pieces handle the dummy-prefix space", "[tokenizer]") {
  auto tok = pp::load_sentencepiece_tokenizer(kTinySp);
  std::vector<int32_t> ids = tok->encode("When Mary went to the store");
  REQUIRE(ids.size() >= 2);
  CHECK(tok->piece(ids[0]) == " When");       // "▁When"
  CHECK(tok->decode({ids[0]}) == "When");      // the first piece's space is the dummy prefix
  CHECK(tok->decode(ids) == "When Mary went to the store");
  CHECK(tok->decode(tok->encode("  two spaces")) == "  two spaces");
  CHECK(tok->piece(1) == "<s>");
  std::vector<int32_t> cjk = tok->encode("日");  // not in the training text: byte fallback
  REQUIRE(cjk.size() >= 3);
  CHECK(tok->piece(cjk.back()).rfind("<0x", 0) == 0);
  CHECK(tok->decode(cjk) == "日");
  CHECK_THROWS_AS(tok->encode("bad \xff"), pp::TokenizerError);
  CHECK_THROWS_AS(tok->decode({459}), pp::InputError);
  CHECK_THROWS_AS(tok->piece(-1), pp::InputError);
}

// ---- load_tokenizer ----

TEST_CASE("load_tokenizer picks the kind from the files in the folder", "[tokenizer]") {
  SECTION("vocab.json + merges.txt: GPT-2 BPE") {
    auto tok = pp::load_tokenizer(kGpt2Dir);
    REQUIRE(tok);
    CHECK_FALSE(tok->adds_bos());
    CHECK(tok->vocab_size() == 50257);
  }
  SECTION("tokenizer.model: sentencepiece, preferred to a tokenizer.json beside it") {
    TempDir dir;
    fs::copy_file(kTinySp, dir.path / "tokenizer.model");
    dir.write("tokenizer.json", "this file would not parse");
    auto tok = pp::load_tokenizer(dir.path);
    REQUIRE(tok);
    CHECK(tok->adds_bos());
    CHECK(tok->vocab_size() == 459);
  }
  SECTION("no tokenizer files: nullptr") {
    TempDir dir;
    dir.write("config.json", "{}");
    CHECK(pp::load_tokenizer(dir.path) == nullptr);
  }
  SECTION("a folder that does not exist: IoError") {
    CHECK_THROWS_AS(pp::load_tokenizer(pptest::source_dir() / "no-such-model-folder"), pp::IoError);
  }
  SECTION("half of a vocab.json + merges.txt pair") {
    TempDir dir;
    dir.write("vocab.json", tiny_vocab({}).dump());
    CHECK_THAT(tokenizer_error([&] { pp::load_tokenizer(dir.path); }), Catch::Contains("merges.txt"));
  }
}

TEST_CASE("malformed tokenizer files give a TokenizerError naming the file and where", "[tokenizer]") {
  TempDir dir;
  std::vector<std::pair<std::string, std::string>> merges = {{"h", "e"}, {"l", "l"}};
  auto load = [&](const std::string& vocab, const std::string& merges_txt) {
    dir.write("vocab.json", vocab);
    dir.write("merges.txt", merges_txt);
    return tokenizer_error([&] { pp::load_tokenizer(dir.path); });
  };
  const std::string good_vocab = tiny_vocab(merges).dump(), good_merges = merges_text(merges);
  CHECK(load(good_vocab, good_merges) == "(no error)");

  CHECK_THAT(load("{\"a\": 0,", good_merges), Catch::Contains("vocab.json") && Catch::Contains("not valid JSON"));
  CHECK_THAT(load("[1, 2]", good_merges), Catch::Contains("vocab.json"));
  json v = tiny_vocab(merges);
  v["he"] = "seven";
  CHECK_THAT(load(v.dump(), good_merges), Catch::Contains("vocab.json: key \"he\""));
  v = tiny_vocab(merges);
  v["he"] = 100000;
  CHECK_THAT(load(v.dump(), good_merges), Catch::Contains("key \"he\"") && Catch::Contains("without gaps"));
  v = tiny_vocab(merges);
  v["he"] = 0;  // the id of "!"
  CHECK_THAT(load(v.dump(), good_merges), Catch::Contains("also the id of"));
  v = tiny_vocab(merges);
  v.erase("!");
  v["not a byte"] = 0;  // the id "!" had
  CHECK_THAT(load(v.dump(), good_merges), Catch::Contains("vocab.json") && Catch::Contains("byte 0x21"));

  CHECK_THAT(load(good_vocab, "#version: 0.2\nh e\nl l x\n"),
             Catch::Contains("merges.txt line 3") && Catch::Contains("two symbols"));
  CHECK_THAT(load(good_vocab, "#version: 0.2\nh e\nl\n"), Catch::Contains("merges.txt line 3"));
  CHECK_THAT(load(good_vocab, "h e\nl l\nhe ll\n"),
             Catch::Contains("merges.txt line 3") && Catch::Contains("'hell'") && Catch::Contains("vocab.json"));
  CHECK_THAT(load(good_vocab, "#version: 0.2\nh e\nzz l\n"),
             Catch::Contains("merges.txt line 3") && Catch::Contains("'zz'"));

  TempDir sp_dir;
  sp_dir.write("tokenizer.model", "this is not a sentencepiece model");
  CHECK_THAT(tokenizer_error([&] { pp::load_tokenizer(sp_dir.path); }),
             Catch::Contains("tokenizer.model") && Catch::Contains("not a sentencepiece model"));
  std::string proto = read_text(kTinySp);
  sp_dir.write("tokenizer.model", proto.substr(0, proto.size() / 2));  // truncated
  CHECK_THAT(tokenizer_error([&] { pp::load_tokenizer(sp_dir.path); }), Catch::Contains("tokenizer.model"));
}
