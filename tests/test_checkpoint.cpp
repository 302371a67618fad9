// Loading model folders: every way a checkpoint can be wrong is refused, naming file, tensor or key.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "helpers.hpp"
#include "models/checkpoint.hpp"
#include "models/safetensors.hpp"

namespace pp = pathpatch;
namespace fs = std::filesystem;

namespace {

const char* kConfig = R"({"model_type":"gpt2","n_layer":1,"n_embd":8,"n_head":2,"n_positions":4,"vocab_size":5})";

// A model folder holding the given tensors and config.
fs::path folder(const std::string& name, const std::map<std::string, pp::Tensor>& tensors, const std::string& config = kConfig) {
  fs::path dir = fs::temp_directory_path() / ("pathpatch_ckpt_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::vector<std::pair<std::string, pp::Tensor>> list(tensors.begin(), tensors.end());
  pp::write_safetensors(dir / "model.safetensors", list);
  std::ofstream(dir / "config.json") << config;
  return dir;
}

std::map<std::string, pp::Tensor> good_tensors() {
  pp::ModelConfig c = pp::ModelConfig::parse(kConfig, "test");
  std::map<std::string, pp::Tensor> t;
  for (const pp::TensorSpec& s : pp::checkpoint_layout(c)) t[s.name] = pp::Tensor::full(s.shape, 0.1f);
  return t;
}

}  // namespace

TEST_CASE("a well-formed folder loads; random checkpoints follow the same layout", "[checkpoint]") {
  CHECK_NOTHROW(pp::load_model(folder("good", good_tensors())));
  pp::ModelConfig c = pp::ModelConfig::parse(kConfig, "test");
  CHECK_NOTHROW(pp::Model(c, pp::Checkpoint::random(c, 3)));
}

TEST_CASE("missing and wrong-shaped tensors are refused naming them", "[checkpoint][refuse]") {
  auto t = good_tensors();
  t.erase("h.0.attn.c_proj.bias");
  CHECK_THROWS_WITH(pp::load_model(folder("missing", t)),
                    Catch::Contains("missing tensor 'h.0.attn.c_proj.bias'") && Catch::Contains("[8]"));
  t = good_tensors();
  t["h.0.mlp.c_fc.weight"] = pp::Tensor({32, 8});  // transposed: Conv1D weights are [in, out]
  CHECK_THROWS_WITH(pp::load_model(folder("shape", t)),
                    Catch::Contains("'h.0.mlp.c_fc.weight' has shape [32, 8], expected [8, 32]"));
}

TEST_CASE("config errors and missing files name the file", "[checkpoint][refuse]") {
  CHECK_THROWS_WITH(pp::load_model(folder("badcfg", good_tensors(), R"({"model_type":"gpt2"})")),
                    Catch::Contains("config.json") && Catch::Contains("missing key"));
  fs::path dir = folder("noweights", good_tensors());
  fs::remove(dir / "model.safetensors");
  CHECK_THROWS_WITH(pp::load_model(dir), Catch::Contains("neither model.safetensors nor model.safetensors.index.json"));
  CHECK_THROWS_AS(pp::load_model(fs::temp_directory_path() / "pathpatch_no_such_folder"), pp::IoError);
}

TEST_CASE("a shard index that lies is refused", "[checkpoint][refuse]") {
  fs::path dir = folder("index", good_tensors());
  fs::rename(dir / "model.safetensors", dir / "part-1.safetensors");
  std::ofstream(dir / "model.safetensors.index.json") << R"({"weight_map":{"wte.weight":"part-2.safetensors"}})";
  CHECK_THROWS_WITH(pp::load_model(dir), Catch::Contains("part-2.safetensors"));
  std::ofstream(dir / "model.safetensors.index.json") << R"({"weight_map":{"wte.weight":"../x"}})";
  CHECK_THROWS_WITH(pp::load_model(dir), Catch::Contains("plain file name"));
  std::ofstream(dir / "model.safetensors.index.json") << R"({"metadata":{}})";
  CHECK_THROWS_WITH(pp::load_model(dir), Catch::Contains("weight_map"));
}

TEST_CASE("a cache belongs to one model; text needs a tokenizer", "[checkpoint][refuse]") {
  auto cache = std::make_shared<pp::Cache>();
  pp::RunOptions o;
  o.cache = cache;
  pp::Batch b = pp::Batch::from_rows({{1, 2, 3}});
  pp::forward(pptest::model("gpt2"), b, o);
  CHECK_THROWS_WITH(pp::forward(pptest::model("gpt2-prefixed"), b, o), Catch::Contains("another model"));
  CHECK_THROWS_WITH(pptest::model("gpt2").encode({"hello"}), Catch::Contains("has no tokenizer"));
}
