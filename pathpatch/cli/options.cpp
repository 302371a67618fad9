#include "pathpatch/cli/options.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "graph/files.hpp"
#include "pathpatch/prompts.hpp"
#include "viz/diagrams.hpp"
#include "viz/heatmap.hpp"

namespace pathpatch::cli {

namespace fs = std::filesystem;

// ---- Lists and numbers ---------------------------------------------------------------------

std::vector<std::string> split_list(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i) s += (i ? sep : "") + parts[i];
  return s;
}

std::vector<int> parse_ints(const std::string& s, const std::string& what) {
  std::vector<int> out;
  for (const std::string& item : split_list(s)) {
    try {
      size_t used = 0;
      long v = std::stol(item, &used);
      if (used != item.size() || v < INT32_MIN || v > INT32_MAX) throw std::invalid_argument(item);
      out.push_back(static_cast<int>(v));
    } catch (const std::exception&) {
      throw InputError(what + ": '" + item + "' is not an integer (expected a comma-separated list)");
    }
  }
  return out;
}

int parse_int(const std::string& s, const std::string& what) {
  std::vector<int> v = parse_ints(s, what);
  if (v.size() != 1) throw InputError(what + ": expected one integer, got '" + s + "'");
  return v[0];
}

uint64_t parse_bytes(const std::string& s, const std::string& what) {
  size_t used = 0;
  unsigned long long n = 0;
  try {
    if (s.empty() || !std::isdigit(static_cast<unsigned char>(s[0]))) throw std::invalid_argument(s);
    n = std::stoull(s, &used);
  } catch (const std::exception&) {
    throw InputError(what + ": '" + s + "' is not a size (a number of bytes, or 512K, 64M, 4G)");
  }
  const std::string unit = s.substr(used);
  int shift = 0;
  if (unit == "K" || unit == "k") shift = 10;
  else if (unit == "M") shift = 20;
  else if (unit == "G") shift = 30;
  else if (!unit.empty()) throw InputError(what + ": '" + s + "': the unit must be K, M or G (powers of 1024)");
  if (n > (UINT64_MAX >> shift)) throw InputError(what + ": '" + s + "' is too large");
  return static_cast<uint64_t>(n) << shift;
}

void prepare_output_folder(const std::string& dir, const std::string& what) {
  if (dir.empty()) throw InputError(what + ": an empty folder name");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!ec && !fs::is_directory(dir, ec)) ec = std::make_error_code(std::errc::not_a_directory);
  if (ec) throw IoError(what + " '" + dir + "': cannot make this folder (" + files::error_text(ec.value()) + ")");
}

void parse_positions(const std::string& spec, Sites& sites) {
  auto colon = spec.find(':');
  std::string mode = spec.substr(0, colon), arg = colon == std::string::npos ? "" : spec.substr(colon + 1);
  if (mode == "all") sites.positions = SitePositions::All;
  else if (mode == "each") sites.positions = SitePositions::Each;
  else if (mode == "last") sites.positions = SitePositions::Last;
  else if (mode == "lastk") {
    sites.positions = SitePositions::LastK;
    sites.k = parse_int(arg, "--positions lastk:K");
  } else if (mode == "custom" || mode == "constant") {
    sites.positions = mode == "custom" ? SitePositions::Custom : SitePositions::CustomConstant;
    sites.custom = parse_ints(arg, "--positions " + mode);
    if (sites.custom.empty()) throw InputError("--positions " + mode + ":P,P,... needs positions");
  } else {
    throw InputError("--positions '" + spec + "': expected all, each, last, lastk:K, custom:P,... or constant:P,...");
  }
}

namespace {

std::pair<int, int> layer_head(const std::string& s, const std::string& what) {
  std::vector<int> v = parse_ints(s.find('.') == std::string::npos ? s : s.substr(0, s.find('.')) + "," + s.substr(s.find('.') + 1), what);
  if (v.size() != 2) throw InputError(what + ": '" + s + "' is not LAYER.HEAD (e.g. 1.3)");
  if (v[0] < 0 || v[1] < 0)
    throw InputError(what + ": '" + s + "': layers and heads count from 0 (an MLP sender is mlp:L)");
  return {v[0], v[1]};
}

}  // namespace

int Experiment::position(const std::string& token, const std::string& what) const {
  const bool number = !token.empty() && token.find_first_not_of("-0123456789") == std::string::npos;
  if (number) return parse_int(token, what);
  if (!prompts) throw InputError(what + " '" + token + "': a named position needs --prompts with pos_" + token + " fields");
  return static_cast<int>(prompts->column(token));
}

std::vector<int> parse_positions(const std::string& list, const std::string& what, const Experiment& x) {
  std::vector<int> out;
  for (const std::string& token : split_list(list)) out.push_back(x.position(token, what));
  return out;
}

std::pair<std::string, std::vector<int>> split_positions(const std::string& spec, const std::string& what,
                                                         const Experiment& x) {
  const size_t at = spec.find('@');
  if (at == std::string::npos) return {spec, {}};
  std::vector<int> positions = parse_positions(spec.substr(at + 1), what + " '" + spec + "' position", x);
  if (positions.empty()) throw InputError(what + " '" + spec + "': no positions after '@' (e.g. @-1 for the last)");
  return {spec.substr(0, at), positions};
}

std::vector<Receiver> parse_receivers(const std::string& full_spec, const Model& m, const Experiment& x) {
  auto [spec, positions] = split_positions(full_spec, "--receiver", x);
  if (spec == "logits") {
    if (!positions.empty())
      throw InputError("--receiver '" + full_spec + "': the logits take no positions; the metric chooses the "
                       "positions it reads (--metric-positions)");
    return {Receiver::logits()};
  }
  auto colon = spec.find(':');
  if (colon == std::string::npos)
    throw InputError("--receiver '" + spec + "': expected logits, q:L.H, k:L.H, v:L.H or input:L.H (or k:L.gG, "
                     "v:L.gG, input:L.gG for key/value group G)");
  const Receiver::Kind kind = Receiver::kind_named(spec.substr(0, colon));
  const std::string at = spec.substr(colon + 1);
  const size_t g = at.find(".g");
  if (g == std::string::npos) {
    auto [layer, head] = layer_head(at, "--receiver");
    return {Receiver{kind, layer, head, positions}};
  }
  // A key/value group: every query head that reads its keys and values (grouped-query attention).
  if (kind == Receiver::Q)
    throw InputError("--receiver '" + spec + "': queries are per head; a group shares its keys and values (k, v or "
                     "input)");
  const int layer = parse_int(at.substr(0, g), "--receiver '" + spec + "' layer");
  const int group = parse_int(at.substr(g + 2), "--receiver '" + spec + "' group");
  const int groups = m.config().n_kv_heads, per = m.config().n_groups();
  if (group < 0 || group >= groups)
    throw InputError("--receiver '" + spec + "': the model has " + std::to_string(groups) +
                     " key/value heads per layer (groups 0 to " + std::to_string(groups - 1) + ")");
  std::vector<Receiver> out;
  for (int h = group * per; h < (group + 1) * per; ++h) out.push_back(Receiver{kind, layer, h, positions});
  return out;
}

std::vector<Sender> parse_senders(const std::string& spec, const Experiment& x) {
  std::vector<Sender> out;
  for (const std::string& item : split_list(spec)) {
    // After a sender with '@', an item that names no sender (L.H, mlp:L) is one more of its
    // positions: 0.1@-1,-2,0.3 or 0.1@s2,io.
    const bool sender = item.find('.') != std::string::npos || item.rfind("mlp:", 0) == 0;
    if (!sender && !out.empty() && !out.back().positions.empty()) {
      out.back().positions.push_back(x.position(item, "--senders '" + spec + "' position"));
      continue;
    }
    auto [s, positions] = split_positions(item, "--senders", x);
    if (s.rfind("mlp:", 0) == 0) {
      const int layer = parse_int(s.substr(4), "--senders mlp:L");
      if (layer < 0) throw InputError("--senders '" + s + "': layers count from 0");
      out.push_back(Sender{layer, -1, positions});
    } else {
      auto [layer, head] = layer_head(s, "--senders");
      out.push_back(Sender{layer, head, positions});
    }
  }
  if (out.empty()) throw InputError("--senders: none given (e.g. 0.1,0.3 or mlp:2)");
  return out;
}

// ---- Inputs --------------------------------------------------------------------------------

const Tokenizer& require_tokenizer(const Model& m) {
  if (!m.tokenizer())
    throw TokenizerError(m.dir().string() + " has no tokenizer files (vocab.json + merges.txt, tokenizer.model or "
                                            "tokenizer.json); give token ids instead");
  return *m.tokenizer();
}

void Prompts::add_options(CLI::App* app, const std::string& name, const std::string& what) {
  flag = name.empty() ? "--text" : "--" + name;
  std::string ids_flag = name.empty() ? "--ids" : "--" + name + "-ids";
  app->add_option(flag, texts, what + " as text (repeat for more rows; needs the model's tokenizer)");
  app->add_option(ids_flag, ids, what + " as comma-separated token ids (repeat for more rows)");
}

namespace {
const char* kPromptsHelp = "A JSONL prompt file: per line clean (or prompt), corrupt, answer, wrong, or their ids "
                           "forms ids, corrupt_ids, answer_id, wrong_id (the zoo's eval.jsonl files)";
const char* kLimitHelp = "With --prompts: only the first N prompts";
const char* kWhereHelp = "With --prompts: only the lines whose FIELD holds VALUE, e.g. template=heldout_0 (repeat: all "
                         "must hold); a fixed position is then one token of every row";

std::vector<PromptFilter> filters(const std::vector<std::string>& where, bool file) {
  if (!where.empty() && !file) throw InputError("--where applies to --prompts");
  std::vector<PromptFilter> out;
  for (const std::string& w : where) out.push_back(PromptFilter::parse(w));
  return out;
}
}  // namespace

void Prompts::add_file_options(CLI::App* app) {
  app->add_option("--prompts", file, kPromptsHelp);
  app->add_option("--limit", limit, kLimitHelp);
  app->add_option("--where", where, kWhereHelp);
}

Batch Prompts::batch(const Model& m, const std::string& what) const {
  const std::vector<PromptFilter> only = filters(where, !file.empty());
  if (!file.empty()) {
    if (!texts.empty() || !ids.empty()) throw InputError(what + ": give " + flag + " or --prompts, not both");
    return read_prompts(file, m, limit, only).clean;
  }
  if (texts.empty() && ids.empty()) throw InputError(what + ": give " + flag + " or its -ids form");
  if (!texts.empty() && !ids.empty()) throw InputError(what + ": give text or token ids, not both");
  if (!texts.empty()) return m.encode(texts);
  std::vector<std::vector<int32_t>> rows;
  for (const std::string& s : ids) {
    std::vector<int> v = parse_ints(s, what + " ids");
    rows.emplace_back(v.begin(), v.end());
  }
  Batch b = Batch::from_rows(rows, m.pad_id());
  m.validate(b, what);
  return b;
}

void ExperimentSpec::add_options(CLI::App* app, bool one_input) {
  single_input = one_input;
  if (one_input) {
    clean.add_options(app, "", "Input");
  } else {
    clean.add_options(app, "clean", "Clean input");
    corrupt.add_options(app, "corrupt", "Corrupted input");
  }
  app->add_option("--answer", answer, "The correct next token, as text (one per row, or one for all)");
  app->add_option("--wrong", wrong, "The distractor token for logit differences, as text");
  app->add_option("--answer-id", answer_ids, "The correct next token's id (instead of --answer)");
  app->add_option("--wrong-id", wrong_ids, "The distractor's id (instead of --wrong)");
  app->add_option("--prompts", prompts, kPromptsHelp);
  app->add_option("--limit", limit, kLimitHelp);
  app->add_option("--where", where, kWhereHelp);
  app->add_option("--metric", metric, "logit-diff, normalized, prob, logprob, kl or ce")->capture_default_str();
  app->add_option("--metric-positions", metric_positions, "Positions scored, comma-separated, negative from the end")
      ->capture_default_str();
}

namespace {

// One token per row: ids as given, or texts read as the continuation of each clean prompt.
std::vector<int32_t> tokens_for(const Model& m, const std::vector<std::string>& texts, const std::vector<int>& ids,
                                const std::vector<std::string>& prompts, int64_t rows, const std::string& flag) {
  if (!texts.empty() && !ids.empty()) throw InputError(flag + ": give text or ids, not both");
  std::vector<int32_t> out(ids.begin(), ids.end());
  if (!texts.empty()) {
    if (prompts.empty()) throw InputError(flag + " as text needs the prompts as text too (--clean); or give " + flag + "-id");
    for (size_t r = 0; r < prompts.size(); ++r) {
      if (prompts[r].empty())
        throw InputError(flag + " as text needs every prompt as text; prompt " + std::to_string(r) +
                         " is token ids only (give " + flag + "-id)");
      out.push_back(next_token(require_tokenizer(m), prompts[r], texts.size() == 1 ? texts[0] : texts.at(r % texts.size())));
    }
    if (texts.size() != 1 && texts.size() != prompts.size())
      throw InputError(flag + ": " + std::to_string(texts.size()) + " answers for " + std::to_string(prompts.size()) + " prompts");
  }
  if (out.size() == 1) out.assign(rows, out[0]);
  if (static_cast<int64_t>(out.size()) != rows)
    throw InputError(flag + ": " + std::to_string(out.size()) + " tokens for " + std::to_string(rows) +
                     " rows; give one per row, or one for all");
  return out;
}

}  // namespace

Experiment ExperimentSpec::build(const Model& m) const {
  Experiment x;
  std::vector<std::string> texts = clean.texts;            // the clean prompts, for answers given as text
  std::vector<int> answers = answer_ids, wrongs = wrong_ids;
  const std::vector<PromptFilter> only = filters(where, !prompts.empty());
  if (!prompts.empty()) {
    if (!clean.texts.empty() || !clean.ids.empty() || !corrupt.texts.empty() || !corrupt.ids.empty())
      throw InputError(single_input ? "--prompts: the prompts come from the file; leave out --text and --ids"
                                    : "--prompts: the prompts come from the file; leave out --clean and --corrupt");
    auto file = std::make_shared<const PromptSet>(read_prompts(prompts, m, limit, only));
    const PromptSet& set = *file;
    x.prompts = file;
    x.clean = set.clean;
    x.corrupted = set.corrupted;
    texts = set.texts;
    auto from_file = [&](const std::vector<int32_t>& file_ids, const std::vector<std::string>& flag_texts,
                         std::vector<int>& flag_ids, const char* flag) {
      if (file_ids.empty()) return;
      if (!flag_texts.empty() || !flag_ids.empty())
        throw InputError(std::string(flag) + ": " + prompts + " gives them already, one per prompt");
      flag_ids.assign(file_ids.begin(), file_ids.end());
    };
    from_file(set.answer, answer, answers, "--answer");
    from_file(set.wrong, wrong, wrongs, "--wrong");
  } else {
    if (limit != 0) throw InputError("--limit applies to --prompts");
    x.clean = clean.batch(m, single_input ? "input" : "clean input");
    x.corrupted = single_input ? x.clean : corrupt.batch(m, "corrupted input");
  }
  if (x.clean.seq != x.corrupted.seq) {
    throw InputError("the clean input has " + std::to_string(x.clean.seq) + " tokens, the corrupted one " +
                     std::to_string(x.corrupted.seq) + "; patching needs the same length (see `pathpatch tokenize`)");
  }
  std::vector<int> pos = parse_ints(metric_positions, "--metric-positions");
  const int64_t B = x.clean.size;
  if (metric == "logit-diff" || metric == "normalized") {
    auto a = tokens_for(m, answer, answers, texts, B, "--answer");
    auto w = tokens_for(m, wrong, wrongs, texts, B, "--wrong");
    x.metric = metric == "logit-diff" ? Metric::logit_diff(a, w, pos) : Metric::normalized_logit_diff(a, w, pos);
  } else if (metric == "prob" || metric == "logprob") {
    auto a = tokens_for(m, answer, answers, texts, B, "--answer");
    x.metric = metric == "prob" ? Metric::prob(a, pos) : Metric::log_prob(a, pos);
  } else if (metric == "kl" || metric == "ce") {
    x.metric = metric == "kl" ? Metric::kl(pos) : Metric::cross_entropy(metric_positions == "-1" ? std::vector<int>{} : pos);
    if (!answer.empty() || !answer_ids.empty() || !wrong.empty() || !wrong_ids.empty())
      x.warnings.push_back("--metric " + metric + " scores against the clean run's own tokens: --answer and --wrong "
                           "are not used");
  } else {
    throw InputError("--metric '" + metric + "': expected logit-diff, normalized, prob, logprob, kl or ce");
  }
  return x;
}

void print_warnings(const std::vector<std::string>& warnings) {
  std::vector<std::string> said;
  for (const std::string& w : warnings) {
    if (std::find(said.begin(), said.end(), w) != said.end()) continue;
    said.push_back(w);
    std::cerr << "pathpatch: warning: " << w << "\n";
  }
}

// ---- Outputs -------------------------------------------------------------------------------

void Outputs::add_options(CLI::App* app) {
  app->add_option("--heatmap", heatmap, "Write a heatmap (.svg)");
  app->add_option("--out", out, "Write the numbers (.csv or .json)");
  app->add_option("--circuit", circuit, "Draw the cells above --threshold as a circuit (.svg, .png, .pdf, .dot)");
  app->add_option("--threshold", threshold, "Smallest |effect| drawn in --circuit")->capture_default_str();
  app->add_option("--colour-limit", limit, "Heatmap colours span [-L, L] (the same scale across pictures); default: "
                                           "the largest |value|");
  app->add_flag("--per-head", per_head, "Per-head sweeps (z, q, k, v, ...): one heatmap per head (-headH) besides "
                                        "the sum over heads");
}

void check_output_path(const std::string& path, const std::string& flag, const std::vector<std::string>& extensions) {
  if (path.empty()) return;
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
  if (std::find(extensions.begin(), extensions.end(), ext) == extensions.end())
    throw InputError(flag + " '" + path + "': expected a name ending in " + join(extensions, ", "));
  const fs::path parent = fs::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty() && !fs::is_directory(parent, ec))
    throw IoError(flag + " '" + path + "': the folder '" + parent.string() + "' does not exist");
}

void Outputs::check() const {
  check_output_path(heatmap, "--heatmap", {".svg", ".png", ".pdf"});
  check_output_path(out, "--out", {".csv", ".json"});
  check_output_path(circuit, "--circuit", {".svg", ".png", ".pdf", ".dot"});
}

namespace {

std::string with_suffix(const std::string& path, const std::string& suffix) {
  if (suffix.empty()) return path;
  fs::path p(path);
  return (p.parent_path() / (p.stem().string() + "-" + suffix + p.extension().string())).string();
}

}  // namespace

void Outputs::write(const Model& m, const Batch& clean, const SweepResult& sweep, const std::string& suffix,
                    viz::Baseline baseline) const {
  // Position ticks: the tokens of the first row without padding (rows of a prompt file differ in
  // length; the longest has a token at every position).
  std::vector<std::string> labels;
  int64_t row = 0;
  while (row + 1 < clean.size && clean.length(row) < clean.seq) ++row;
  if (m.tokenizer())
    for (int64_t t = 0; t < clean.seq; ++t) labels.push_back(m.tokenizer()->piece(clean.id(row, t)));
  if (!heatmap.empty()) {
    viz::HeatmapOptions o;
    o.baseline = baseline;
    o.position_labels = labels;
    o.limit = limit;
    std::string path = with_suffix(heatmap, suffix);
    viz::write_sweep(sweep, path, o);
    std::cout << "wrote " << path << "\n";
    const auto head = std::find(sweep.axes.begin(), sweep.axes.end(), "head");
    if (per_head && head != sweep.axes.end() && sweep.axes.size() > 2) {
      o.reduce_axis = "head";
      for (int h = 0; h < sweep.values.size(static_cast<int>(head - sweep.axes.begin())); ++h) {
        o.fixed_index = h;
        std::string one = with_suffix(heatmap, (suffix.empty() ? "" : suffix + "-") + "head" + std::to_string(h));
        viz::write_sweep(sweep, one, o);
        std::cout << "wrote " << one << "\n";
      }
    }
  }
  if (!out.empty()) {
    std::string path = with_suffix(out, suffix);
    viz::write_sweep(sweep, path);
    std::cout << "wrote " << path << "\n";
  }
  if (!circuit.empty()) {
    std::string path = with_suffix(circuit, suffix);
    viz::CircuitOptions o;
    o.baseline = baseline;
    o.position_labels = labels;
    viz::circuit_graph(sweep, threshold, o).render_file(path);
    std::cout << "wrote " << path << "\n";
  }
}

// ---- Progress ------------------------------------------------------------------------------

Progress ProgressBar::callback() {
  return [this](size_t done, size_t total) { show(done, total); };
}

void ProgressBar::show(size_t done, size_t total) {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (!isatty(STDERR_FILENO) || (elapsed < 1.0 && !shown_) || total == 0) return;
  shown_ = true;
  const int width = 30;
  int filled = static_cast<int>(width * done / total);
  // The time left, at the pace so far (units differ in cost, so it is an estimate).
  const double left = done > 0 ? elapsed * static_cast<double>(total - done) / static_cast<double>(done) : 0;
  std::fprintf(stderr, "\r%s [%s%s] %zu/%zu  %.0fs, about %.0fs left  ", what_.c_str(),
               std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(), done, total, elapsed, left);
  std::fflush(stderr);
}

ProgressBar::~ProgressBar() {
  if (shown_) std::fprintf(stderr, "\n");
}

// ---- Printing ------------------------------------------------------------------------------

std::string default_model_dir() {
  if (const char* zoo = std::getenv("PATHPATCH_ZOO")) return (fs::path(zoo) / "induction-gpt2").string();
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  fs::path installed = exe.parent_path().parent_path() / "share" / "pathpatch" / "zoo" / "induction-gpt2";
  if (!ec && fs::exists(installed)) return installed.string();
  return (fs::path(PP_SOURCE_DIR) / "models" / "zoo" / "induction-gpt2").string();
}

TopTokens top_tokens(const float* logits, int64_t V, int k) {
  k = static_cast<int>(std::min<int64_t>(std::max(k, 1), V));
  std::vector<int> idx(static_cast<size_t>(V));
  for (int i = 0; i < V; ++i) idx[i] = i;
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int x, int y) { return logits[x] > logits[y]; });
  TopTokens out;
  out.log_z = log_sum_exp(logits, V);
  for (int i = 0; i < k; ++i) {
    out.ids.push_back(idx[i]);
    out.probs.push_back(std::exp(logits[idx[i]] - out.log_z));
  }
  return out;
}

void print_top_tokens(const Model& m, const Batch& batch, const Tensor& logits, int top) {
  const int64_t T = batch.seq, V = m.config().vocab_size;
  for (int64_t b = 0; b < batch.size; ++b) {
    const TopTokens t = top_tokens(logits.data() + (b * T + T - 1) * V, V, top);
    std::cout << "row " << b << " next token:";
    for (size_t i = 0; i < t.ids.size(); ++i) {
      std::string piece;  // built by appends: GCC 12 warns falsely (-Wrestrict) on "'" + s + "' "
      if (m.tokenizer()) piece.append("'").append(m.tokenizer()->piece(t.ids[i])).append("' ");
      std::printf("  %s%d (p=%.3f)", piece.c_str(), t.ids[i], t.probs[i]);
    }
    std::cout << "\n";
  }
}

void print_sweep(const SweepResult& s, float base) {
  if (std::isnan(s.corrupted))  // one run, no corrupted one (direct logit attribution)
    std::printf("%s: %s (the run's value %.4f)\n", s.title.c_str(), s.metric.c_str(), s.clean);
  else
    std::printf("%s: %s (clean %.4f, corrupted %.4f)\n", s.title.c_str(), s.metric.c_str(), s.clean, s.corrupted);
  const Tensor& v = s.values;
  const int64_t rows = v.size(0), cols = v.dim() == 2 ? v.size(1) : 1;
  if (v.dim() == 1 || (v.dim() == 2 && cols <= kMaxTableColumns)) {
    std::printf("%8s", (s.axes[0] + (v.dim() == 2 ? "\\" + s.axes[1] : "")).c_str());
    for (int64_t c = 0; c < cols; ++c) std::printf(" %8s", v.dim() == 2 ? s.labels[1][c].c_str() : "");
    std::printf("\n");
    for (int64_t r = 0; r < rows; ++r) {
      std::printf("%8s", s.labels[0][r].c_str());
      for (int64_t c = 0; c < cols; ++c) {
        float x = v.data()[r * cols + c];
        if (std::isnan(x)) std::printf(" %8s", "-");
        else std::printf(" %8.4f", x);
      }
      std::printf("\n");
    }
    return;
  }
  // Three axes, or too many columns to read: the ten cells that move the metric most (NaN last).
  std::vector<int64_t> idx(v.numel());
  for (int64_t i = 0; i < v.numel(); ++i) idx[i] = i;
  auto effect = [&](int64_t i) { return std::isnan(v.data()[i]) ? -1.0f : std::fabs(v.data()[i] - base); };
  const int64_t shown = std::min<int64_t>(10, v.numel());
  std::partial_sort(idx.begin(), idx.begin() + shown, idx.end(), [&](int64_t a, int64_t b) { return effect(a) > effect(b); });
  std::printf("largest effects (%s; every cell in --out):\n", join(s.axes, ", ").c_str());
  for (int64_t i = 0; i < shown; ++i) {
    std::string where;
    int64_t rest = idx[i];
    for (int a = v.dim() - 1; a >= 0; --a) {
      const int64_t at = rest % v.size(a);
      rest /= v.size(a);
      const std::string label = a < static_cast<int>(s.labels.size()) ? s.labels[a].at(at) : std::to_string(at);
      where = s.axes[a] + "=" + label + (where.empty() ? "" : " ") + where;
    }
    std::printf("  %s  %.4f\n", where.c_str(), v.data()[idx[i]]);
  }
}

}  // namespace pathpatch::cli
