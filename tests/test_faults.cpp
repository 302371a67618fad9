// Faults from outside: files that change under a run, full disks, devices and FIFOs where files
// should be, files of the wrong kind or size, names listed twice, indices out of range, rules that
// would take minutes to compile. Each is refused with an error that says what and where, or
// survived; none crashes, blocks or writes half a file. (Threads: test_threads.cpp. The CLI's side:
// tests/cli_refusals.sh.)
#include <catch2/catch.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "graph/files.hpp"
#include "helpers.hpp"
#include "models/checkpoint.hpp"
#include "models/safetensors.hpp"

namespace pp = pathpatch;
namespace fs = std::filesystem;

namespace {

// A scratch folder, removed at the end of the test.
struct Scratch {
  fs::path dir;
  explicit Scratch(const std::string& name) : dir(fs::temp_directory_path() / ("pathpatch-faults-" + name)) {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~Scratch() { fs::remove_all(dir); }
};

// A copy of a golden model folder.
fs::path copy_of(const std::string& golden, const Scratch& s) {
  const fs::path to = s.dir / golden;
  fs::copy(pptest::golden(golden), to, fs::copy_options::recursive);
  return to;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const pp::Error& e) {
    return e.what();
  }
  return "(no error)";
}

pp::Batch ids() { return pp::Batch::from_rows({{3, 14, 15, 92, 65, 35, 89}}); }

}  // namespace

TEST_CASE("faults: a checkpoint rewritten or truncated after loading changes nothing", "[faults]") {
  Scratch s("rewritten");
  const fs::path dir = copy_of("gpt2", s);
  const pp::Model m = pp::load_model(dir);
  const pp::Tensor before = pp::forward(m, ids()).logits;
  // Rewritten in place with other bytes (same size), then truncated: the weights were read into
  // memory at load, so the model computes what it did.
  const uint64_t size = fs::file_size(dir / "model.safetensors");
  std::ofstream(dir / "model.safetensors", std::ios::binary | std::ios::in | std::ios::out)
      << std::string(static_cast<size_t>(size), '\x7f');
  CHECK(pp::bit_equal(pp::forward(m, ids()).logits, before));
  fs::resize_file(dir / "model.safetensors", 100);
  CHECK(pp::bit_equal(pp::forward(m, ids()).logits, before));
  // Mapping is the opt-in: the same numbers from an intact file.
  const pp::Model mapped = pp::load_model(pptest::golden("gpt2"), pp::WeightAccess::Map);
  CHECK(pp::bit_equal(pp::forward(mapped, ids()).logits, before));
}

TEST_CASE("faults: a file that shrinks between opening and reading is an IoError naming the tensor", "[faults]") {
  Scratch s("shrinks");
  const fs::path dir = copy_of("gpt2", s);
  const pp::SafetensorsFile f = pp::SafetensorsFile::open(dir / "model.safetensors");
  fs::resize_file(dir / "model.safetensors", fs::file_size(dir / "model.safetensors") / 2);
  CHECK_THAT(error_of([&] { f.load("ln_f.bias"); }),
             Catch::Contains("ln_f.bias") && Catch::Contains("shorter than when it was opened"));
}

TEST_CASE("faults: a full disk or a device in the way is an IoError naming the path, and nothing half-written stays",
          "[faults]") {
  REQUIRE(fs::exists("/dev/full"));  // a Linux machine has it; the test depends on it
  CHECK_THAT(error_of([] { pp::files::write("/dev/full", std::string(1 << 16, 'x')); }),
             Catch::Contains("/dev/full: cannot write (no space left on device)"));
  Scratch s("full");
  fs::create_symlink("/dev/full", s.dir / "out.csv");
  CHECK_THAT(error_of([&] { pp::files::write(s.dir / "out.csv", "a,b\n"); }),
             Catch::Contains("out.csv: cannot write (no space left on device)"));
  CHECK_THAT(error_of([&] { pp::write_safetensors(s.dir / "out.csv", {{"t", pp::Tensor({4})}}); }),
             Catch::Contains("no space left on device"));
  // A writer that does not commit leaves neither the file nor its temporary.
  { pp::files::Writer w(s.dir / "never.txt"); w.write("abc", 3); }
  CHECK(fs::directory_iterator(s.dir) != fs::directory_iterator());
  for (const auto& e : fs::directory_iterator(s.dir)) CHECK(e.path().filename() == "out.csv");
  // Replacing a file is all or nothing, and follows a symbolic link to the file it names.
  pp::files::write(s.dir / "real.txt", "old");
  fs::create_symlink("real.txt", s.dir / "link.txt");
  pp::files::write(s.dir / "link.txt", "new contents");
  CHECK(fs::is_symlink(s.dir / "link.txt"));
  CHECK(pp::files::read(s.dir / "real.txt", 100, "test file") == "new contents");
  CHECK_THAT(error_of([&] { pp::files::write(s.dir, "x"); }), Catch::Contains("is a directory"));
}

TEST_CASE("faults: devices, FIFOs, folders and oversized files where files belong are refused before reading",
          "[faults]") {
  Scratch s("kinds");
  const fs::path dir = copy_of("gpt2", s);
  auto config_error = [&] { return error_of([&] { pp::load_model(dir); }); };
  // /dev/zero (endless), /dev/urandom, a FIFO (would block), a folder, a symbolic link loop.
  fs::remove(dir / "config.json");
  fs::create_symlink("/dev/zero", dir / "config.json");
  CHECK_THAT(config_error(), Catch::Contains("config.json: cannot read the config (not a regular file)"));
  fs::remove(dir / "config.json");
  REQUIRE(::mkfifo((dir / "config.json").c_str(), 0600) == 0);
  CHECK_THAT(config_error(), Catch::Contains("a FIFO, not a regular file"));
  fs::remove(dir / "config.json");
  fs::create_directory(dir / "config.json");
  CHECK_THAT(config_error(), Catch::Contains("config.json: cannot read the config (is a directory)"));
  fs::remove(dir / "config.json");
  fs::create_symlink("config.json", dir / "config.json");
  CHECK_THAT(config_error(), Catch::Contains("too many levels of symbolic links"));
  fs::remove(dir / "config.json");
  // Larger than a config may be: 17 MiB (a sparse file; nothing is read).
  { std::ofstream(dir / "config.json") << "{}"; }
  fs::resize_file(dir / "config.json", 17u << 20);
  CHECK_THAT(config_error(), Catch::Contains("holds 17 MiB, more than the 16 MiB"));
  fs::copy_file(pptest::golden("gpt2") / "config.json", dir / "config.json", fs::copy_options::overwrite_existing);
  // The weights and the shard index.
  fs::rename(dir / "model.safetensors", dir / "saved.safetensors");
  fs::create_symlink("/dev/zero", dir / "model.safetensors");
  CHECK_THAT(config_error(), Catch::Contains("model.safetensors: cannot read the safetensors file (not a regular file)"));
  fs::remove(dir / "model.safetensors");
  REQUIRE(::mkfifo((dir / "model.safetensors.index.json").c_str(), 0600) == 0);
  CHECK_THAT(config_error(), Catch::Contains("model.safetensors.index.json: cannot read the shard index (a FIFO"));
  // Tokenizer files (read after the weights).
  fs::remove(dir / "model.safetensors.index.json");
  fs::rename(dir / "saved.safetensors", dir / "model.safetensors");
  fs::copy_file(pptest::source_dir() / "models/zoo/induction-gpt2/merges.txt", dir / "merges.txt");
  fs::create_symlink("/dev/urandom", dir / "vocab.json");
  CHECK_THAT(config_error(), Catch::Contains("vocab.json: cannot read the tokenizer file (not a regular file)"));
}

TEST_CASE("faults: a tensor listed twice in a safetensors header is refused", "[faults]") {
  const std::string header = R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  CHECK_THROWS_WITH(pp::parse_safetensors_header(header, 8, "dup.safetensors"),
                    Catch::Contains("dup.safetensors: tensor 'w' is listed twice in the header"));
  CHECK_THROWS_AS(pp::parse_safetensors_header(header, 8, "dup.safetensors"), pp::FormatError);
  // Equal names inside a tensor's own description are a different matter (the format says nothing).
  CHECK_NOTHROW(pp::parse_safetensors_header(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4, "ok"));
}

TEST_CASE("faults: negative or missing layers and heads are refused everywhere", "[faults]") {
  const pp::Model& m = pptest::model("gpt2");
  pp::Batch a = pp::Batch::from_rows({{3, 14, 15, 92}}), b = pp::Batch::from_rows({{3, 14, 15, 11}});
  const pp::Metric metric = pp::Metric::logit_diff({1}, {2});
  CHECK_THAT(error_of([&] { pp::path_patch(m, a, b, {{0, -2}}, {pp::Receiver::logits()}); }),
             Catch::Contains("sender head -2 does not exist"));
  CHECK_THAT(error_of([&] { pp::path_patch(m, a, b, {{-1, 0}}, {pp::Receiver::logits()}); }),
             Catch::Contains("sender layer -1 does not exist"));
  CHECK_THAT(error_of([&] { pp::sweep_senders(m, a, b, {{pp::Receiver::Q, -1, 0}}, metric); }),
             Catch::Contains("receiver a-1.head0 does not exist"));
  CHECK_THAT(error_of([&] { pp::sweep_senders(m, a, b, {{pp::Receiver::K, 1, -3}}, metric); }),
             Catch::Contains("does not exist"));
  CHECK_THAT(error_of([&] { pp::sweep_receivers(m, a, b, {{0, -5}}, pp::Receiver::Q, metric); }),
             Catch::Contains("sender head -5 does not exist"));
  pp::RunOptions o;
  o.interventions = {pp::zero("z0", {{-1}, {}})};
  CHECK_THAT(error_of([&] { pp::forward(m, a, o); }), Catch::Contains("head -1 is out of range"));
  pp::Sites sites;
  sites.layers = {-1};
  CHECK_THAT(error_of([&] { pp::activation_patching(m, a, b, sites, metric); }), Catch::Contains("layer -1 does not exist"));
}

TEST_CASE("faults: rules that would take minutes to compile are refused within a bounded time", "[faults][rules]") {
  const pp::Model& m = pptest::model("gpt2");
  std::string stars;
  for (int i = 0; i < 3000; ++i) stars += "* ";
  CHECK_THROWS_WITH(pp::CompiledRules(m, 7, pp::PathRules().add(stars, 1)),
                    Catch::Contains("too large to compile") && Catch::Contains("8000000 steps"));
  // Long rules of distinct names compile: the bound is on the work, not the length.
  std::string names = "ln_final";
  for (int i = 0; i < 200; ++i) names += i % 2 ? " f1" : " a1";
  CHECK_NOTHROW(pp::CompiledRules(m, 7, pp::PathRules().add(names, 1)));
}

TEST_CASE("faults: equal hashes never merge different interventions or inputs", "[faults]") {
  // What a memo key's hit is confirmed by: contents, bit for bit.
  pp::BoundIntervention x{pp::Op::Add, 3, {}, {}, 0, pp::Tensor::full({4}, 1.0f), 0, ""};
  pp::BoundIntervention y = x;
  CHECK(x.same_effect(y));
  y.value = pp::Tensor::full({4}, 1.0000001f);
  y.value_hash = x.value_hash;  // as if the hashes had collided
  CHECK_FALSE(x.same_effect(y));
  pp::ExprTable t;
  CHECK(t.intern_list({x}) != t.intern_list({y}));
  CHECK(t.intern_list({x}) == t.intern_list({x}));
}

TEST_CASE("faults: a finished sweep holds no idle buffers; errors name what the system said", "[faults]") {
  // Wide enough that its activations are pooled (64 KiB and more).
  const pp::ModelConfig c = pp::ModelConfig::parse(
      R"({"model_type": "gpt2", "n_layer": 2, "n_embd": 256, "n_head": 4, "n_positions": 32, "vocab_size": 50})", "w");
  const pp::Model m(c, pp::Checkpoint::random(c, 3));
  std::vector<std::vector<int32_t>> rows(8, std::vector<int32_t>(16, 7));
  pp::Batch a = pp::Batch::from_rows(rows);
  for (auto& r : rows) r[8] = 9;
  pp::Batch b = pp::Batch::from_rows(rows);
  pp::sweep_senders(m, a, b, {pp::Receiver::logits()}, pp::Metric::logit_diff(std::vector<int32_t>(8, 1), std::vector<int32_t>(8, 2)));
  CHECK(pp::buffer_pool_idle_bytes() == 0);
  CHECK(pp::buffer_pool_peak_idle_bytes() > 0);  // the sweep did reuse buffers while it ran
  // Words for what went wrong (root reads anything, so permission denied is checked here only).
  CHECK(pp::files::error_text(EACCES) == "permission denied");
  CHECK(pp::files::error_text(EISDIR) == "is a directory");
  CHECK(pp::files::error_text(ENOSPC) == "no space left on device");
}
