// The pathpatch command-line tool. Each subcommand is a thin layer over the library API; the
// common option parsing lives in cli/options.hpp and the demo in cli/demo.cpp.
#include <fnmatch.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <optional>
#include <set>

#include "pathpatch/cli/options.hpp"
#include "graph/blas.hpp"
#include "graph/files.hpp"
#include "graph/kernels.hpp"
#include "models/safetensors.hpp"
#include "pathpatch/analysis.hpp"
#include "pathpatch/pathpatch.hpp"
#include "viz/diagrams.hpp"
#include "viz/heatmap.hpp"
#ifdef PATHPATCH_HAVE_MPI
#include "pathpatch/distributed.hpp"
#endif

namespace pp = pathpatch;
using namespace pathpatch::cli;

namespace {

#ifdef PATHPATCH_HAVE_MPI
// Under mpirun, patch and paths split their units over the processes (pathpatch/distributed.hpp);
// rank 0 prints and writes; other commands run on rank 0 alone.
using Job = pp::distributed::Job;
using RankError = pp::distributed::RankError;
#else
// Built without MPI: always a job of one.
struct Job {
  Job(int*, char***) {}
  int rank() const { return 0; }
  int size() const { return 1; }
  bool root() const { return true; }
  pp::Shard shard() const { return {}; }
  void fail(int) {}
  void check(const std::exception_ptr& failure) {
    if (failure) std::rethrow_exception(failure);
  }
  template <class Sweep>
  auto run(Sweep&& sweep) {
    return sweep();
  }
};
struct RankError : pp::Error {
  using pp::Error::Error;
};
#endif

// What a --resume folder is stamped with: the command and every option that changes the numbers
// (not where the outputs go, nor memory settings), and the model's folder.
std::string fingerprint(const std::vector<std::string>& args, const std::string& model_dir) {
  static const std::set<std::string> not_counted = {"--resume", "--heatmap", "--out",        "--circuit",
                                                    "--threshold", "--cache-bytes", "--pool-bytes", "--model"};
  std::string s = "pathpatch";
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    const std::string key = a.substr(0, a.find('='));
    if (not_counted.count(key)) {
      if (a.find('=') == std::string::npos) ++i;  // its value is the next argument
      continue;
    }
    s += " " + a;
  }
  std::error_code ec;
  const std::filesystem::path dir = std::filesystem::weakly_canonical(model_dir, ec);
  return s + "\nmodel " + (ec ? model_dir : dir.string());
}

// OpenBLAS picks its kernels as it loads, before main. If it picked generic ones on a CPU with
// AVX2 or AVX-512 (graph/blas.hpp), start again with OPENBLAS_CORETYPE set: once, since the new
// process has it set. A user's own OPENBLAS_CORETYPE is left alone.
void restart_if_blas_is_generic(char** argv) {
  const pp::blas::BlasInfo& b = pp::blas::info();
  if (!b.generic_kernel || !b.coretype_env.empty() || std::getenv("PATHPATCH_KEEP_BLAS")) return;
  setenv("OPENBLAS_CORETYPE", b.better_coretype.c_str(), 1);
  setenv("PATHPATCH_BLAS_WAS", b.kernel.c_str(), 1);
  execv("/proc/self/exe", argv);
  unsetenv("OPENBLAS_CORETYPE");  // no restart: carry on with Eigen's GEMM, and say so
  unsetenv("PATHPATCH_BLAS_WAS");
  std::cerr << "pathpatch: " << b.advice() << "\n";
}

void print_compute() {
  const pp::blas::BlasInfo& b = pp::blas::info();
  std::cout << "BLAS        " << b.config << "\nkernel      " << b.kernel;
  if (b.coretype_env.empty())
    std::cout << " (chosen by OpenBLAS)";
  else if (const char* was = std::getenv("PATHPATCH_BLAS_WAS"))
    std::cout << " (OPENBLAS_CORETYPE=" << b.coretype_env << ", set by pathpatch: OpenBLAS chose " << was << ")";
  else
    std::cout << " (OPENBLAS_CORETYPE=" << b.coretype_env << ")";
  std::cout << "\ncpu         " << b.cpu.text() << "\nthreads     " << pp::kernels::threads()
            << "\ngemm        " << pp::blas::to_string(pp::blas::gemm_path()) << "\n";
  if (!b.advice().empty()) std::cout << "note        " << b.advice() << "\n";
  std::cout << "\n";
}

void print_info(const pp::Model& m) {
  std::cout << "model       " << m.dir().string() << "\n" << m.config().summary();
  std::cout << "tokenizer   " << (m.tokenizer() ? "yes" : "none") << "\n\nnodes:\n ";
  for (const auto& n : m.graph().nodes()) std::cout << " " << n.text();
  std::cout << "\n\nactivations (axes: B batch rows, T positions, S key positions, D d_model, H heads (key/value "
               "heads for k and v under grouped-query attention), E d_head, F d_mlp):\n";
  for (const auto& a : m.graph().activations()) std::cout << "  " << a.name << "  [" << a.axes << "]\n";
}

int cmd_tokenize(const pp::Model& m, const std::vector<std::string>& texts) {
  const pp::Tokenizer& tok = require_tokenizer(m);
  for (const std::string& t : texts) {
    std::vector<int32_t> ids = tok.encode_prompt(t);
    std::cout << ids.size() << " tokens:";
    for (int32_t id : ids) std::cout << " " << id;
    std::cout << "\n ";
    for (int32_t id : ids) std::cout << " [" << tok.piece(id) << "]";
    std::cout << "\n";
  }
  return 0;
}

// The memo cache every command runs with (--cache-bytes).
std::shared_ptr<pp::Cache> cache;

// Activation patching's sweeps (exact or AtP), one per site: printed, written, their warnings kept.
// `tag` names the files of a second set of sweeps ("exact" beside AtP's).
void report_sites(const pp::Model& m, const Experiment& x, const std::map<std::string, pp::SweepResult>& results,
                  bool noise, const Outputs& outputs, const std::string& tag, std::vector<std::string>& warnings) {
  // What a patch moves away from: the patched run's own input (normalised scores start at 0).
  const bool normalised = x.metric.kind == pp::MetricKind::NormalizedLogitDiff;
  const pp::viz::Baseline base = normalised ? pp::viz::Baseline::None
                                 : noise    ? pp::viz::Baseline::Clean
                                            : pp::viz::Baseline::Corrupted;
  for (const auto& [name, sweep] : results) {
    print_sweep(sweep, normalised ? 0.0f : noise ? sweep.clean : sweep.corrupted);
    std::string suffix = results.size() > 1 ? name : "";
    if (!tag.empty()) suffix += (suffix.empty() ? "" : "-") + tag;
    outputs.write(m, x.clean, sweep, suffix, base);
    for (const std::string& w : sweep.warnings)
      if (std::find(warnings.begin(), warnings.end(), w) == warnings.end()) warnings.push_back(w);
  }
}

pp::Sites parse_sites(const std::string& sites_spec, const std::string& layers, const std::string& positions) {
  pp::Sites sites;
  sites.names = split_list(sites_spec);
  sites.layers = parse_ints(layers, "--layers");
  parse_positions(positions, sites);
  return sites;
}

int cmd_patch(Job& job, pp::UnitLog* log, const pp::Model& m, const Experiment& x, const pp::Sites& sites, bool noise,
              const Outputs& outputs) {
  pp::PatchingOptions o;
  o.cache = cache;
  o.direction = noise ? pp::Direction::Noise : pp::Direction::Denoise;
  o.shard = job.shard();
  o.log = log;
  ProgressBar bar("patching");
  if (job.root()) o.progress = bar.callback();
  auto results = job.run([&] { return pp::activation_patching(m, x.clean, x.corrupted, sites, x.metric, o); });
  if (!job.root()) return 0;
  std::vector<std::string> warnings = x.warnings;
  report_sites(m, x, results, noise, outputs, "", warnings);
  print_warnings(warnings);
  return 0;
}

// AtP beside exact patching: how far the estimate is from the truth.
void compare_with_exact(const pp::SweepResult& atp, const pp::SweepResult& exact) {
  const pp::Agreement a = pp::agreement(atp, exact);
  std::printf("%s against exact patching: correlation of the changes %.3f over %lld cells, largest |AtP - exact| %.4f\n",
              exact.title.c_str(), a.correlation, static_cast<long long>(a.cells), a.worst);
}

int cmd_attribute(const pp::Model& m, const Experiment& x, const pp::Sites& sites, bool noise, bool exact,
                  const Outputs& outputs) {
  pp::PatchingOptions o;
  o.cache = cache;
  o.direction = noise ? pp::Direction::Noise : pp::Direction::Denoise;
  const auto atp = pp::attribution_patching(m, x.clean, x.corrupted, sites, x.metric, o);
  std::vector<std::string> warnings = x.warnings;
  report_sites(m, x, atp, noise, outputs, "", warnings);
  if (exact) {
    ProgressBar bar("exact patching");
    o.progress = bar.callback();
    const auto truth = pp::activation_patching(m, x.clean, x.corrupted, sites, x.metric, o);
    report_sites(m, x, truth, noise, outputs, "exact", warnings);
    for (const auto& [name, sweep] : truth) compare_with_exact(atp.at(name), sweep);
  }
  print_warnings(warnings);
  return 0;
}

// Rows [first, first + count) of an experiment: its inputs and the metric's tokens.
Experiment rows_of(const Experiment& x, int64_t first, int64_t count) {
  Experiment out{x.clean.rows(first, count), x.corrupted.rows(first, count), x.metric, {}, x.prompts};
  auto slice = [&](std::vector<int32_t>& v) {
    if (!v.empty()) v = std::vector<int32_t>(v.begin() + first, v.begin() + first + count);
  };
  slice(out.metric.answer);
  slice(out.metric.wrong);
  return out;
}

struct CircuitSpec {
  std::string method = "eap-ig", json, draw, ablation = "corrupted";
  int steps = 5, exact = 0;
  int64_t top = 20, greedy = 0, held_out = 0;
  float threshold = -1;  // < 0: not given
};

// EAP / EAP-IG scores for every edge, a circuit chosen from them, and its faithfulness, exactly.
int cmd_circuit(const pp::Model& m, const Experiment& x, const CircuitSpec& c) {
  const int64_t B = x.clean.size;
  if (c.held_out < 0 || c.held_out >= B)
    throw pp::InputError("--held-out " + std::to_string(c.held_out) + ": the experiment has " + std::to_string(B) +
                         " rows, and at least one must score the edges");
  const Experiment fit = c.held_out > 0 ? rows_of(x, 0, B - c.held_out) : x;
  const Experiment test = c.held_out > 0 ? rows_of(x, B - c.held_out, c.held_out) : x;
  pp::EdgeAttributionOptions o;
  if (c.method == "eap") o.method = pp::EdgeMethod::Eap;
  else if (c.method == "eap-ig-activations") o.method = pp::EdgeMethod::EapIgActivations;
  else if (c.method != "eap-ig")
    throw pp::InputError("--method '" + c.method + "': expected eap-ig, eap or eap-ig-activations");
  o.steps = c.steps;
  ProgressBar bar(c.method);
  o.progress = bar.callback();
  pp::EdgeGraph g = pp::edge_attribution(m, fit.clean, fit.corrupted, fit.metric, o);
  const std::string scored_by =
      std::string(pp::edge_method_name(o.method)) + (c.method == "eap" ? "" : ", " + std::to_string(c.steps) + " steps");
  std::printf("%s scores of %lld edges on %lld rows (metric: %s); the largest:\n", scored_by.c_str(),
              static_cast<long long>(g.n_edges()), static_cast<long long>(fit.clean.size), fit.metric.name().c_str());
  const auto ranked = g.edges_by_score();
  const size_t shown = std::min<size_t>(ranked.size(), std::max(10, c.exact));
  std::vector<float> exact;
  if (c.exact > 0)
    exact = pp::exact_edge_scores(m, fit.clean, fit.corrupted, g,
                                  {ranked.begin(), ranked.begin() + std::min<size_t>(ranked.size(), c.exact)}, fit.metric);
  std::printf("  %4s  %-22s %10s%s\n", "rank", "edge", "score", exact.empty() ? "" : "  exact change (this edge alone)");
  for (size_t i = 0; i < shown; ++i) {
    const auto [s, d] = ranked[i];
    std::printf("  %4zu  %-22s %+10.5f", i + 1, g.edge_name(s, d).c_str(), g.score(s, d));
    if (i < exact.size()) std::printf("  %+10.5f", exact[i]);
    std::printf("\n");
  }
  std::string how;
  if (c.greedy > 0) {
    g.select_greedy(c.greedy);
    how = "greedy " + std::to_string(c.greedy);
  } else if (c.threshold >= 0) {
    g.select_threshold(c.threshold);
    how = "|score| >= " + std::to_string(c.threshold);
  } else {
    g.select_top(c.top);
    how = "top " + std::to_string(c.top);
  }
  if (c.ablation != "corrupted" && c.ablation != "mean")
    throw pp::InputError("--ablation '" + c.ablation + "': expected corrupted or mean");
  const bool mean = c.ablation == "mean";  // the means over the corrupted prompts tested
  const pp::Faithfulness f =
      mean ? pp::mean_ablated_faithfulness(m, test.clean, test.corrupted, test.corrupted, g, test.metric)
           : pp::faithfulness(m, test.clean, test.corrupted, g, test.metric, cache);
  std::printf("circuit (%s, pruned): %lld edges, %lld nodes\n", how.c_str(), static_cast<long long>(f.edges),
              static_cast<long long>(f.nodes));
  std::printf("%s on %s%lld rows: clean %.4f, %s %.4f, circuit %.4f; faithfulness %.3f (%s)\n",
              test.metric.name().c_str(), c.held_out > 0 ? "the held-out " : "the same ",
              static_cast<long long>(test.clean.size), f.clean, mean ? "every edge mean-ablated" : "corrupted",
              f.corrupted, f.circuit, f.faithfulness,
              mean ? "every edge outside the circuit carrying its source's mean over the corrupted prompts"
                   : "every edge outside the circuit patched from the corrupted run, exactly");
  if (!c.json.empty()) {
    pp::files::write(c.json, g.to_json());
    std::cout << "wrote " << c.json << " (EAP-IG's graph format)\n";
  }
  if (!c.draw.empty()) {
    pp::viz::CircuitOptions co;
    co.metric = fit.metric.name();
    pp::viz::circuit_graph(g, scored_by + ", " + how, co).render_file(c.draw);
    std::cout << "wrote " << c.draw << "\n";
  }
  print_warnings(x.warnings);
  return 0;
}

// The `paths` command's own options.
struct PathsSpec {
  std::vector<std::string> receivers;  // --receiver, each parsed by parse_receivers
  std::string senders;                 // --senders: sweep receivers instead of senders
  std::string receiver_kind = "input";
  std::string sender_positions;        // with a sender sweep
  bool mlps_on_path = false, include_mlps = false;
};

int cmd_paths(Job& job, pp::UnitLog* log, const pp::Model& m, const Experiment& x, const PathsSpec& spec,
              const Outputs& outputs) {
  const std::vector<std::string>& receiver_specs = spec.receivers;
  const std::string& senders_spec = spec.senders;
  if (!senders_spec.empty() && !spec.sender_positions.empty())
    throw pp::InputError("--sender-positions: with --senders, give each sender its positions (--senders 0.1@-1)");
  pp::PathPatchingOptions o;
  o.cache = cache;
  o.mlps_on_path = spec.mlps_on_path;
  o.shard = job.shard();
  o.log = log;
  ProgressBar bar("path patching");
  if (job.root()) o.progress = bar.callback();
  pp::SweepResult sweep;
  if (!senders_spec.empty()) {
    sweep = job.run([&] {
      auto [kind, positions] = split_positions(spec.receiver_kind, "--receiver-kind", x);
      return pp::sweep_receivers(m, x.clean, x.corrupted, parse_senders(senders_spec, x),
                                 pp::Receiver::kind_named(kind), x.metric, o, positions);
    });
    sweep.title = "receivers (" + spec.receiver_kind + ") of " + senders_spec;
  } else {
    sweep = job.run([&] {
      std::vector<pp::Receiver> receivers;
      for (const std::string& r : receiver_specs)
        for (const pp::Receiver& one : parse_receivers(r, m, x)) receivers.push_back(one);
      if (receivers.empty()) receivers.push_back(pp::Receiver::logits());
      const std::vector<int> at = parse_positions(spec.sender_positions, "--sender-positions", x);
      return pp::sweep_senders(m, x.clean, x.corrupted, receivers, x.metric, o, spec.include_mlps, at);
    });
    sweep.title = std::string("senders") + (spec.sender_positions.empty() ? "" : "@" + spec.sender_positions) +
                  " -> " + (receiver_specs.empty() ? std::string("logits") : join(receiver_specs, ", "));
  }
  if (!job.root()) return 0;
  const bool normalised = x.metric.kind == pp::MetricKind::NormalizedLogitDiff;
  print_sweep(sweep, normalised ? 1.0f : sweep.clean);
  outputs.write(m, x.clean, sweep, "", normalised ? pp::viz::Baseline::None : pp::viz::Baseline::Clean);
  std::vector<std::string> warnings = x.warnings;
  warnings.insert(warnings.end(), sweep.warnings.begin(), sweep.warnings.end());
  print_warnings(warnings);
  return 0;
}

int cmd_trace(const pp::Model& m, const Prompts& clean, const Prompts& corrupted, const std::vector<std::string>& rules,
              int default_input, int top, const std::string& render) {
  pp::Batch c = clean.batch(m, "clean input"), k = corrupted.batch(m, "corrupted input");
  pp::PathRules pr;
  for (const std::string& r : rules) {
    auto eq = r.rfind('=');
    if (eq == std::string::npos)
      throw pp::InputError("--rule '" + r + "': expected PATTERN=INPUT, e.g. 'ln_final a1 a1.head a1.head3=1'");
    pr.add(r.substr(0, eq), parse_int(r.substr(eq + 1), "--rule '" + r + "' input"));
  }
  pr.otherwise(default_input);
  pp::RunOptions opt;
  opt.cache = cache;
  pp::Result r = pp::run(m, {c, k}, pr, opt);
  std::cout << "steps " << r.stats.steps << ", computed " << r.stats.computed << ", cache hits " << r.stats.cache_hits
            << ", node visits " << r.stats.node_visits << ", " << r.stats.flops / 1e6 << " MFLOP\n";
  print_top_tokens(m, c, r.logits, top);
  print_warnings(r.warnings);
  if (!render.empty()) {
    pp::viz::render_provenance(r, m, render, pp::viz::DiagramOptions::for_inputs({c, k}, {"clean", "corrupted"}));
    std::cout << "wrote " << render << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  restart_if_blas_is_generic(argv);  // before MPI starts: the restart replaces this process
  const std::vector<std::string> args(argv, argv + argc);  // as given (MPI_Init may edit argv)
  Job job(&argc, &argv);
  CLI::App app{"pathpatch: path patching and activation patching on transformer language models"};
  app.require_subcommand(1);
  app.footer(
      "Examples:\n"
      "  pathpatch demo\n"
      "  pathpatch info --model models/zoo/induction-gpt2\n"
      "  pathpatch tokenize --model models/zoo/ioi-llama --text 'When Mary and John went to the store'\n"
      "  pathpatch forward --model models/zoo/ioi-llama --text 'When Mary and John went to the store, John gave a drink to'\n"
      "  pathpatch forward --model tests/golden/gpt2 --ids 3,14,15 --dump acts.safetensors --names 'blocks.0.*'\n"
      "  pathpatch patch --model models/zoo/ioi-llama --clean 'When Mary and John went to the store, John gave a drink to'\n"
      "      --corrupt 'When Mary and John went to the store, Anna gave a drink to' --answer ' Mary' --wrong ' John'\n"
      "      --sites z --heatmap z.svg\n"
      "  pathpatch paths --model models/zoo/ioi-llama --clean ... --corrupt ... --answer ' Mary' --wrong ' John' --heatmap s.svg\n"
      "  pathpatch attribute --model models/zoo/ioi-llama --prompts models/zoo/ioi-llama/eval.jsonl --sites z --exact\n"
      "  pathpatch circuit --model models/zoo/ioi-llama --prompts models/zoo/ioi-llama/eval.jsonl --held-out 100 "
      "--top 60 --draw c.svg\n"
      "  pathpatch trace --model models/zoo/ioi-llama --clean ... --corrupt ... --rule 'ln_final a1 a1.head a1.head3=1' "
      "--render paths.svg\n"
      "  pathpatch attention --model models/zoo/ioi-llama --text 'When Mary and John went to the store, John gave a "
      "drink to' --layer 2\n"
      "\nExit codes: 0 success, 1 bad input (the message says what and where), 2 bad usage, 3 internal error.");

  std::string model_dir, cache_bytes = "4G", pool_bytes;
  bool process_weights = false;
  auto add_model = [&](CLI::App* sub, bool required = true) {
    auto* o = sub->add_option("--model", model_dir, "Model folder (config.json, model.safetensors, tokenizer files)");
    if (required) o->required();
    sub->add_flag("--process-weights", process_weights,
                  "Process the weights as TransformerLens's from_pretrained does (fold the norms, centre the "
                  "writers and the unembedding, fold value biases): its activation values; the same predictions");
    sub->add_option("--cache-bytes", cache_bytes, "Memory the memo cache may hold (512M, 4G, ...)")->capture_default_str();
    sub->add_option("--pool-bytes", pool_bytes,
                    "Idle tensor buffers kept for reuse (default: an eighth of the machine's memory, 256M to 4G)");
  };

  auto* info = app.add_subcommand(
      "info", "Print the BLAS and its kernels, and a model's config, parameter count, nodes and activations");
  add_model(info, false);

  std::vector<std::string> texts;
  auto* tokenize = app.add_subcommand("tokenize", "Show the token ids and pieces of texts");
  add_model(tokenize);
  tokenize->add_option("--text", texts, "Text to tokenize (repeat for more)")->required();

  Prompts input;
  int top = 5;
  std::string dump, names = "*";
  auto* fwd = app.add_subcommand("forward", "Run the model: the top next tokens, or dump activations");
  add_model(fwd);
  input.add_options(fwd, "", "Input");
  input.add_file_options(fwd);
  fwd->add_option("--top", top, "How many next tokens to show per row")->capture_default_str();
  fwd->add_option("--dump", dump,
                  "Write logits and activations (F32, TransformerLens names) and the input ids (I32) and mask (U8): "
                  "to a .safetensors file, or to a folder of .npy files (a name ending in / or without extension)");
  std::vector<std::string> zero_specs, mean_specs;
  fwd->add_option("--zero", zero_specs, "Zero an activation (z1, or z1:2,3 for those heads); repeat for more");
  fwd->add_option("--mean", mean_specs,
                  "Set an activation to its mean over the input's rows (mean ablation: the rows are the dataset); "
                  "z1 or z1:2,3");
  bool each_position = false;
  fwd->add_flag("--each-position", each_position,
                "Every position: its token, the loss of the next input token, the top predictions (--top)");
  fwd->add_option("--names", names, "With --dump: only activations whose name matches this glob, or one short name (z1)")
      ->capture_default_str();

  Prompts generate_input;
  int generate_tokens = 10;
  std::vector<std::string> generate_zero;
  auto* generate = app.add_subcommand("generate", "Greedy continuations, plain and with heads or layers ablated");
  add_model(generate);
  generate_input.add_options(generate, "", "Input");
  generate_input.add_file_options(generate);
  generate->add_option("--tokens", generate_tokens, "How many tokens to write")->capture_default_str();
  generate->add_option("--zero", generate_zero,
                       "Also generate with this activation zeroed at every position (z1, or z1:2,3 for those heads); "
                       "repeat for more");

  ExperimentSpec lens_spec;
  lens_spec.metric.clear();  // lens: KL from the model's output, or the answers' logit difference / log-prob
  Outputs lens_outputs;
  int64_t lens_position = -1, lens_row = 0;
  auto* lens = app.add_subcommand(
      "lens", "The logit lens: each layer's residual stream read through the final norm and unembedding");
  add_model(lens);
  lens_spec.add_options(lens, true);
  lens->add_option("--position", lens_position, "The position read (negative: from the end)")->capture_default_str();
  lens->add_option("--row", lens_row, "The row whose top tokens are shown")->capture_default_str();
  lens->add_option("--top", top, "How many tokens per reading")->capture_default_str();
  lens_outputs.add_options(lens);
  auto* dla = app.add_subcommand(
      "dla", "Direct logit attribution: each head's, MLP's and embedding's share of the logit difference");
  add_model(dla);
  lens_spec.add_options(dla, true);
  dla->add_option("--position", lens_position, "The position read (negative: from the end)")->capture_default_str();
  int dla_top = 10;
  dla->add_option("--top", dla_top, "How many of the largest shares to list")->capture_default_str();
  lens_outputs.add_options(dla);

  Prompts attention_input;
  int attention_layer = 0, attention_head = -1, attention_row = 0;
  std::string attention_out = "attention";
  auto* attention = app.add_subcommand("attention", "Draw attention patterns: one heatmap per head, tokens on both axes");
  add_model(attention);
  attention_input.add_options(attention, "", "Input");
  attention_input.add_file_options(attention);
  attention->add_option("--layer", attention_layer, "The layer")->required();
  attention->add_option("--head", attention_head, "One head (default: every head of the layer)");
  attention->add_option("--row", attention_row, "Which row of the batch")->capture_default_str();
  attention->add_option("--out", attention_out, "Folder for the pictures (L<layer>.H<head>.svg)")->capture_default_str();

  ExperimentSpec spec;
  Outputs outputs;
  std::string sites = "resid_pre,attn_out,mlp_out", layers, positions = "all";
  bool noise = false;
  auto* patch = app.add_subcommand("patch", "Activation patching over sites, with a metric; heatmaps, CSV, JSON");
  add_model(patch);
  spec.add_options(patch);
  patch->add_option("--sites", sites, "Comma-separated: resid_pre, resid_mid, resid_post, attn_out, mlp_out, z, q, k, v, "
                                      "pattern, result")->capture_default_str();
  patch->add_option("--layers", layers, "Comma-separated layers (default: all)");
  patch->add_option("--positions", positions,
                    "all | each | last | lastk:K | custom:P,P,... | constant:P,P,... (nnpatch's custom_constant)")
      ->capture_default_str();
  patch->add_flag("--noise", noise, "Run the clean input and patch in corrupted values (default: the reverse)");
  outputs.add_options(patch);
  std::string resume;
  const std::string resume_help =
      "Keep finished units of the sweep in this folder; run again with it to go on where a stopped run ended "
      "(without it they are kept in the temporary folder until the sweep is done, and the same command goes on)";
  patch->add_option("--resume", resume, resume_help);

  bool exact = false;
  auto* attribute = app.add_subcommand(
      "attribute", "Attribution patching (AtP): patch's sweep to first order, from one backward; heatmaps, CSV, JSON");
  add_model(attribute);
  spec.add_options(attribute);
  attribute->add_option("--sites", sites, "As for patch")->capture_default_str();
  attribute->add_option("--layers", layers, "Comma-separated layers (default: all)");
  attribute->add_option("--positions", positions, "As for patch")->capture_default_str();
  attribute->add_flag("--noise", noise, "Run the clean input and patch in corrupted values (default: the reverse)");
  attribute->add_flag("--exact", exact, "Also run exact activation patching, and print how far AtP is from it");
  outputs.add_options(attribute);

  CircuitSpec circuit_spec;
  auto* circuit = app.add_subcommand(
      "circuit", "Score every edge with gradients (EAP-IG, EAP), choose a circuit, and test it exactly by patching");
  add_model(circuit);
  spec.add_options(circuit);
  circuit->add_option("--method", circuit_spec.method,
                      "eap-ig (integrated gradients over the embeddings), eap, or eap-ig-activations")
      ->capture_default_str();
  circuit->add_option("--steps", circuit_spec.steps, "EAP-IG's integration steps")->capture_default_str();
  circuit->add_option("--top", circuit_spec.top, "The circuit: the N edges of largest |score| (then pruned)")
      ->capture_default_str();
  circuit->add_option("--threshold", circuit_spec.threshold, "The circuit: edges with |score| >= X instead");
  circuit->add_option("--greedy", circuit_spec.greedy, "The circuit: N edges grown greedily from the logits instead");
  circuit->add_option("--held-out", circuit_spec.held_out,
                      "Test the circuit on the last N rows (of --prompts), score the edges on the others");
  circuit->add_option("--ablation", circuit_spec.ablation,
                      "What the edges outside the circuit carry: the corrupted run's outputs, or their mean over "
                      "the corrupted prompts")
      ->capture_default_str();
  circuit->add_option("--exact", circuit_spec.exact, "Also patch each of the K best edges alone, exactly, and print it");
  circuit->add_option("--json", circuit_spec.json, "Write the graph, scores and circuit in EAP-IG's JSON format");
  circuit->add_option("--draw", circuit_spec.draw, "Draw the circuit (.svg, .png, .pdf, .dot)");

  PathsSpec paths_spec;
  auto* paths = app.add_subcommand("paths", "Path patching: sweep every sender to receivers, or receivers of senders");
  add_model(paths);
  spec.add_options(paths);
  paths->add_option("--receiver", paths_spec.receivers,
                    "logits (default), or q:L.H, k:L.H, v:L.H, input:L.H (one query head), or k:L.gG, v:L.gG, "
                    "input:L.gG (key/value group G: every query head sharing its keys and values); a head's input at "
                    "some positions only: q:2.0@-1 (negative from the end), k:3.1@4,5, k:2.0@s2 (a position the "
                    "prompt file names, its pos_s2 fields); repeat for more");
  paths->add_option("--senders", paths_spec.senders,
                    "Sweep receivers instead: these senders, e.g. 0.1,0.3 or mlp:2; 0.1@-1 sends its output at the last "
                    "position only (0.1@-1,-2 at the last two; 0.2@s2 at a position the prompt file names)");
  paths->add_option("--receiver-kind", paths_spec.receiver_kind,
                    "With --senders: q, k, v or input; q@-1 (or q@s2) at that position only")
      ->capture_default_str();
  paths->add_option("--sender-positions", paths_spec.sender_positions,
                    "Every sender sends its output at these positions only (comma-separated, negative from the end, or "
                    "names the prompt file gives), e.g. -1 or s2");
  paths->add_flag("--mlps-on-path", paths_spec.mlps_on_path,
                  "Recompute MLPs between sender and receiver as part of the path");
  paths->add_flag("--include-mlps", paths_spec.include_mlps, "Also sweep each layer's MLP as a sender");
  outputs.add_options(paths);
  paths->add_option("--resume", resume, resume_help);

  Prompts trace_clean, trace_corrupt;
  std::vector<std::string> rules;
  int default_input = 0;
  std::string render;
  auto* trace = app.add_subcommand("trace", "Run path rules on a clean and a corrupted input; draw the computation");
  add_model(trace);
  trace_clean.add_options(trace, "clean", "Clean input (input 0)");
  trace_corrupt.add_options(trace, "corrupt", "Corrupted input (input 1)");
  trace->add_option("--rule", rules, "PATTERN=INPUT, e.g. 'ln_final a1 a1.head a1.head3=1' (see pathpatch/rules.hpp)")
      ->required();
  trace->add_option("--default", default_input, "The input of paths no rule matches")->capture_default_str();
  trace->add_option("--top", top, "How many next tokens to show per row")->capture_default_str();
  trace->add_option("--render", render, "Draw the provenance DAG: .svg, .png, .pdf or .dot");

  std::string demo_out = "demo-out";
  model_dir = default_model_dir();
  auto* demo = app.add_subcommand("demo", "Find the induction circuit of the default zoo model; write pictures and a summary");
  add_model(demo, false);
  demo->add_option("--out", demo_out, "Folder for the pictures and summary")->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 numbers its errors (106 for a missing option, ...); we promise 2 for every usage error.
    // Every process of a job parses the same arguments: rank 0 speaks for them.
    const int rc = job.root() ? app.exit(e) : (e.get_exit_code() == 0 ? 0 : 1);
    return rc == 0 ? 0 : kUsage;
  }
  const bool sharded = *patch || *paths;
  const bool experiment_needed = sharded || *attribute || *circuit;
  if (!sharded && !job.root()) return 0;  // the other commands run on rank 0 alone
  // An error this process meets alone ends the whole job (the others may be waiting for it); one
  // every process met (a RankError) is reported once, by rank 0.
  auto report = [&](const std::string& what, int code) {
    if (job.size() > 1) {
      std::cerr << "pathpatch: rank " << job.rank() << " of " << job.size() << ": " << what << "\n";
      job.fail(code);
    } else {
      std::cerr << "pathpatch: " << what << "\n";
    }
    return code;
  };
  std::unique_ptr<SweepUnits> units;  // patch and paths: where their finished units are kept
  auto sweep_failed = [&] {
    if (units) units->finish(false);
  };
  try {
    cache = std::make_shared<pp::Cache>(parse_bytes(cache_bytes, "--cache-bytes"));
    if (!pool_bytes.empty()) pp::set_buffer_pool_limit(parse_bytes(pool_bytes, "--pool-bytes"));
    if (*demo) prepare_output_folder(demo_out, "--out");  // before the work, not after it
    std::optional<pp::Model> loaded;
    std::optional<Experiment> experiment;
    auto setup = [&] {
      if (experiment_needed) outputs.check();  // before the work, not after it
      if (*lens || *dla) lens_outputs.check();
      check_output_path(circuit_spec.json, "--json", {".json"});
      check_output_path(circuit_spec.draw, "--draw", {".svg", ".png", ".pdf", ".dot"});
      if (sharded)
        units = std::make_unique<SweepUnits>(resume, fingerprint(args, model_dir), model_dir, spec.prompts,
                                             job.shard(), job.root(), job.size());
      loaded.emplace(pp::load_model(model_dir));
      if (process_weights) {
        pp::Model processed = loaded->processed();
        loaded.reset();  // the unprocessed weights go now
        loaded.emplace(std::move(processed));
      }
      if (experiment_needed) experiment.emplace(spec.build(*loaded));
    };
    if (sharded) {
      // Every process of a job meets the same bad input alike: rank 0 reports it once.
      std::exception_ptr failure;
      try {
        setup();
      } catch (...) {
        failure = std::current_exception();
      }
      job.check(failure);
    } else {
      setup();
    }
    const pp::Model& model = *loaded;
    if (*info) {
      print_compute();
      print_info(model);
    }
    if (*tokenize) return cmd_tokenize(model, texts);
    if (*fwd) return cmd_forward(model, cache, input, top, each_position, dump, names, zero_specs, mean_specs);
    if (*generate) return cmd_generate(model, cache, generate_input, generate_tokens, generate_zero);
    if (*lens) return cmd_lens(model, cache, lens_spec, lens_position, top, lens_row, lens_outputs);
    if (*dla) return cmd_dla(model, cache, lens_spec, lens_position, dla_top, lens_outputs);
    if (*attention)
      return cmd_attention(model, attention_input, attention_layer, attention_head, attention_row, attention_out);
    // A sweep: Ctrl-C says where its units are; then they go if it succeeded (SweepUnits).
    auto sweep = [&](auto&& command) {
      units->announce_stop();
      const int rc = command(units->log());
      units->finish(rc == 0);
      return rc;
    };
    if (*patch)
      return sweep([&](pp::UnitLog* log) {
        return cmd_patch(job, log, model, *experiment, parse_sites(sites, layers, positions), noise, outputs);
      });
    if (*circuit) return cmd_circuit(model, *experiment, circuit_spec);
    if (*attribute)
      return cmd_attribute(model, *experiment, parse_sites(sites, layers, positions), noise, exact, outputs);
    if (*paths)
      return sweep([&](pp::UnitLog* log) {
        return cmd_paths(job, log, model, *experiment, paths_spec, outputs);
      });
    if (*trace) return cmd_trace(model, trace_clean, trace_corrupt, rules, default_input, top, render);
    if (*demo) return run_demo(model, demo_out, cache);
    return 0;
  } catch (const RankError& e) {
    sweep_failed();
    if (job.root()) std::cerr << "pathpatch: " << e.what() << "\n";
    return kBadInput;
  } catch (const pp::Error& e) {
    sweep_failed();
    return report(e.what(), kBadInput);
  } catch (const std::filesystem::filesystem_error& e) {  // a path the user gave that the system refused
    sweep_failed();
    return report(e.path1().string() + ": " + pp::files::error_text(e.code().value()), kBadInput);
  } catch (const std::exception& e) {
    sweep_failed();
    return report(std::string("internal error: ") + e.what(), kInternal);
  }
}
