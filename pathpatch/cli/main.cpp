// The pathpatch command-line tool. Each subcommand is a thin layer over the library API.
#include <fnmatch.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "pathpatch/models/safetensors.hpp"
#include "pathpatch/pathpatch.hpp"

namespace pp = pathpatch;

namespace {

// Exit codes: 0 success, 1 bad input (a pathpatch::Error), 2 bad usage, 3 internal error.
constexpr int kBadInput = 1, kInternal = 3;

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      long v = std::stol(item, &used);
      if (used != item.size() || v < INT32_MIN || v > INT32_MAX) throw std::invalid_argument(item);
      ids.push_back(static_cast<int32_t>(v));
    } catch (const std::exception&) {
      throw pp::InputError("--ids: '" + item + "' is not a token id (expected comma-separated integers)");
    }
  }
  if (ids.empty()) throw pp::InputError("--ids: empty list");
  return ids;
}

void print_info(const pp::Model& m) {
  std::cout << "model       " << m.dir().string() << "\n" << m.config().summary() << "\nnodes:\n ";
  for (const auto& n : m.graph().nodes()) std::cout << " " << n.name;
  std::cout << "\n\nactivations:\n";
  for (const auto& a : m.graph().activations()) std::cout << "  " << a.name << "  [" << a.axes << "]\n";
}

int cmd_forward(const pp::Model& m, const std::vector<std::string>& id_lists, const std::string& dump,
                const std::string& names) {
  std::vector<std::vector<int32_t>> rows;
  for (const auto& s : id_lists) rows.push_back(parse_ids(s));
  pp::Batch batch = pp::Batch::from_rows(rows);
  pp::RunOptions opt;
  if (!dump.empty()) {
    for (const auto& a : m.graph().activations())
      if (fnmatch(names.c_str(), a.name.c_str(), 0) == 0) opt.interventions.push_back(pp::probe(a.name));
  }
  pp::Result r = pp::forward(m, batch, opt);
  if (!dump.empty()) {
    std::vector<std::pair<std::string, pp::Tensor>> out;
    if (fnmatch(names.c_str(), "logits", 0) == 0) out.emplace_back("logits", r.logits);
    for (const auto& p : r.probes) out.emplace_back(p.label, p.value);
    std::vector<float> mask(batch.mask.begin(), batch.mask.end());
    out.emplace_back("attention_mask", pp::Tensor::from_vector({batch.size, batch.seq}, mask));
    pp::write_safetensors(dump, out, {{"model", m.dir().string()}});
    std::cout << "wrote " << out.size() << " tensors to " << dump << "\n";
    return 0;
  }
  const int64_t T = batch.seq, V = m.config().vocab_size;
  for (int64_t b = 0; b < batch.size; ++b) {
    const float* row = r.logits.data() + (b * T + T - 1) * V;
    std::vector<int> idx(V);
    for (int i = 0; i < V; ++i) idx[i] = i;
    std::partial_sort(idx.begin(), idx.begin() + std::min<int64_t>(5, V), idx.end(),
                      [&](int x, int y) { return row[x] > row[y]; });
    std::cout << "row " << b << " next token:";
    for (int i = 0; i < std::min<int64_t>(5, V); ++i) std::printf("  %d (%.3f)", idx[i], row[idx[i]]);
    std::cout << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pathpatch: path patching and activation patching on transformer language models"};
  app.require_subcommand(1);
  app.footer(
      "Examples:\n"
      "  pathpatch info --model models/zoo/induction-gpt2\n"
      "  pathpatch forward --model tests/golden/gpt2 --ids 3,14,15 --ids 9,2\n"
      "  pathpatch forward --model tests/golden/gpt2 --ids 3,14,15 --dump acts.safetensors --names 'blocks.0.*'");

  std::string model_dir;
  auto* info = app.add_subcommand("info", "Print a model's config, parameter count, nodes and activations");
  info->add_option("--model", model_dir, "Model folder (config.json + model.safetensors)")->required();

  std::vector<std::string> ids;
  std::string dump, names = "*";
  auto* fwd = app.add_subcommand("forward", "Run the model; print the top-5 next tokens or dump activations");
  fwd->add_option("--model", model_dir, "Model folder")->required();
  fwd->add_option("--ids", ids, "Comma-separated token ids; repeat for more rows (left-padded into one batch)")
      ->required();
  fwd->add_option("--dump", dump, "Write logits and activations (F32, TransformerLens names) to this safetensors file");
  fwd->add_option("--names", names, "Only activations whose name matches this glob (with --dump)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    pp::Model model = pp::load_model(model_dir);
    if (*info) print_info(model);
    if (*fwd) return cmd_forward(model, ids, dump, names);
    return 0;
  } catch (const pp::Error& e) {
    std::cerr << "pathpatch: " << e.what() << "\n";
    return kBadInput;
  } catch (const std::exception& e) {
    std::cerr << "pathpatch: internal error: " << e.what() << "\n";
    return kInternal;
  }
}
