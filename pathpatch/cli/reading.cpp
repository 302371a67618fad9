// The commands that read one input: forward (top tokens, each position, dumps, ablations),
// attention, generate, lens and dla. Each is a thin layer over the library (pathpatch/run.hpp,
// analysis.hpp, lens.hpp, generate.hpp).
#include <fnmatch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>

#include "models/safetensors.hpp"
#include "pathpatch/analysis.hpp"
#include "pathpatch/cli/options.hpp"
#include "viz/heatmap.hpp"

namespace pp = pathpatch;

namespace pathpatch::cli {

namespace {

// --dump DIR/ (or an existing folder, or a new name without extension): one .npy per array; else
// safetensors (also into an existing file without extension, such as a device).
bool dump_is_folder(const std::string& dump) {
  std::error_code ec;
  if (dump.back() == '/' || std::filesystem::is_directory(dump, ec)) return true;
  return std::filesystem::path(dump).extension().empty() && !std::filesystem::exists(dump, ec);
}

// --zero / --mean: "NAME" or "NAME:H,H" (those heads only) -> the activation's full name and heads.
std::pair<std::string, std::vector<int>> ablation_spec(const pp::Model& m, const std::string& spec, const char* flag) {
  const size_t colon = spec.find(':');
  const std::string name = m.graph().activation(m.graph().find_activation(spec.substr(0, colon))).name;
  std::vector<int> heads;
  if (colon != std::string::npos) heads = parse_ints(spec.substr(colon + 1), std::string(flag) + " " + spec + " heads");
  return {name, heads};
}

// Zero ablation, and mean ablation: each activation set to its mean over the input's rows (the
// batch is the dataset), at every position.
std::vector<pp::Intervention> ablations(const pp::Model& m, const std::shared_ptr<pp::Cache>& cache,
                                        const pp::Batch& batch, const std::vector<std::string>& zero,
                                        const std::vector<std::string>& mean) {
  std::vector<pp::Intervention> out;
  for (const std::string& z : zero) {
    auto [name, heads] = ablation_spec(m, z, "--zero");
    out.push_back(pp::zero(name, {heads, {}}));
  }
  if (mean.empty()) return out;
  std::vector<std::pair<std::string, std::vector<int>>> specs;
  pp::RunOptions probes;
  probes.cache = cache;
  for (const std::string& s : mean) {
    specs.push_back(ablation_spec(m, s, "--mean"));
    probes.interventions.push_back(pp::probe(specs.back().first));
  }
  const pp::Result plain = pp::forward(m, batch, probes);
  for (const auto& [name, heads] : specs) {
    const pp::Tensor& v = plain.probe(name);  // [B, ...]: the mean over B, a value for any row
    const int64_t B = v.size(0), each = v.numel() / B;
    std::vector<float> sum(static_cast<size_t>(each), 0.0f);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < each; ++i) sum[i] += v.data()[b * each + i] / static_cast<float>(B);
    pp::Shape shape(v.shape().begin() + 1, v.shape().end());
    out.push_back(pp::set(name, pp::Tensor::from_vector(shape, std::move(sum)), {heads, {}}));
  }
  return out;
}

// The text of some token ids, or the ids themselves when the model has no tokenizer.
std::string text_of(const pp::Model& m, const std::vector<int32_t>& ids) {
  if (m.tokenizer()) return m.tokenizer()->decode(ids);
  std::string s;
  for (int32_t id : ids) s.append(s.empty() ? "" : " ").append(std::to_string(id));
  return s;
}

std::string token_text(const pp::Model& m, int32_t id) {
  return m.tokenizer() ? m.tokenizer()->piece(id) : std::to_string(id);
}

// Every position of each row: its token, the loss of the next input token, the top predictions.
void print_positions(const pp::Model& m, const pp::Batch& batch, const pp::Tensor& logits, int top) {
  const int64_t T = batch.seq, V = m.config().vocab_size;
  for (int64_t b = 0; b < batch.size; ++b) {
    std::printf("row %lld: %4s  %-14s %8s   top next tokens (p)\n", static_cast<long long>(b), "pos", "token", "loss");
    double loss_sum = 0;
    int64_t predicted = 0;
    for (int64_t t = T - batch.length(b); t < T; ++t) {
      const float* l = logits.data() + (b * T + t) * V;
      const TopTokens best = top_tokens(l, V, top);
      std::string token = "'";
      token.append(token_text(m, batch.id(b, t))).append("'");
      std::printf("        %4lld  %-14s", static_cast<long long>(t), token.c_str());
      if (t + 1 < T) {
        const double loss = best.log_z - l[batch.id(b, t + 1)];
        loss_sum += loss;
        ++predicted;
        std::printf(" %8.3f  ", loss);
      } else {
        std::printf(" %8s  ", "");
      }
      for (size_t i = 0; i < best.ids.size(); ++i)
        std::printf(" '%s' %.2f", token_text(m, best.ids[i]).c_str(), best.probs[i]);
      std::printf("\n");
    }
    if (predicted > 0)
      std::printf("  mean loss %.4f over %lld next tokens\n", loss_sum / predicted, static_cast<long long>(predicted));
  }
}

// The shared cache, no full logits: for commands that read the hidden states themselves.
pp::RunOptions without_logits(const std::shared_ptr<pp::Cache>& cache) {
  pp::RunOptions o;
  o.cache = cache;
  o.logits = false;
  return o;
}

}  // namespace

int cmd_forward(const pp::Model& m, const std::shared_ptr<pp::Cache>& cache, const Prompts& prompts, int top,
                bool each_position, const std::string& dump, const std::string& names,
                const std::vector<std::string>& zero, const std::vector<std::string>& mean) {
  pp::Batch batch = prompts.batch(m, "input");
  pp::RunOptions opt;
  opt.cache = cache;
  opt.interventions = ablations(m, cache, batch, zero, mean);
  const size_t n_ablations = opt.interventions.size();
  if (!dump.empty())
    for (const auto& a : m.graph().activations())
      if (fnmatch(names.c_str(), a.name.c_str(), 0) == 0) opt.interventions.push_back(pp::probe(a.name));
  // Not a glob of full names: a short form ("z1", "resid_pre0"), or a NameError with close names.
  if (!dump.empty() && opt.interventions.size() == n_ablations && fnmatch(names.c_str(), "logits", 0) != 0 &&
      names.find_first_of("*?[") == std::string::npos)
    opt.interventions.push_back(pp::probe(m.graph().activation(m.graph().find_activation(names)).name));
  if (!dump.empty() && opt.interventions.size() == n_ablations && fnmatch(names.c_str(), "logits", 0) != 0)
    throw pp::InputError("--names '" + names + "' matches no activation (see `pathpatch info` for the names)");
  pp::Result r = pp::forward(m, batch, opt);
  if (!dump.empty()) {
    std::vector<pp::NamedArray> out;
    if (fnmatch(names.c_str(), "logits", 0) == 0) out.push_back(pp::NamedArray::of("logits", r.logits));
    for (const auto& p : r.probes) out.push_back(pp::NamedArray::of(p.activation, p.value));
    out.push_back(pp::NamedArray::ints("input_ids", {batch.size, batch.seq}, batch.ids));
    out.push_back(pp::NamedArray::bytes("attention_mask", {batch.size, batch.seq}, batch.mask));
    if (dump_is_folder(dump)) {
      pp::write_npy_folder(dump, out);
      std::cout << "wrote " << out.size() << " .npy files to " << dump << "\n";
    } else {
      pp::write_safetensors(dump, out, {{"model", m.dir().string()}});
      std::cout << "wrote " << out.size() << " tensors to " << dump << "\n";
    }
    return 0;
  }
  if (each_position)
    print_positions(m, batch, r.logits, top);
  else
    print_top_tokens(m, batch, r.logits, top);
  return 0;
}

// One head's (or every head's) attention pattern on one row: a heatmap each, and where the last
// position looks.
int cmd_attention(const pp::Model& m, const Prompts& prompts, int layer, int head, int row,
                  const std::string& out_dir) {
  pp::Batch batch = prompts.batch(m, "input");
  prepare_output_folder(out_dir, "--out");
  pp::viz::HeatmapOptions o;
  o.limit = 1;
  const int heads = m.config().n_heads;
  for (int h = head < 0 ? 0 : head; h < (head < 0 ? heads : head + 1); ++h) {
    const pp::HeadAttention a = pp::head_attention(m, batch, layer, h, row);
    const int64_t n = a.pattern.size(0);
    o.annotate = n <= 24;
    const std::string title = "attention of head " + std::to_string(layer) + "." + std::to_string(h);
    std::vector<int64_t> order(n);
    for (int64_t k = 0; k < n; ++k) order[k] = k;
    const float* last = a.pattern.data() + (n - 1) * n;
    std::sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return last[x] > last[y]; });
    std::printf("head %d.%d, from the last position:", layer, h);
    for (int64_t i = 0; i < std::min<int64_t>(3, n); ++i)
      std::printf("  '%s' (%lld) %.2f", a.tokens[order[i]].c_str(), static_cast<long long>(order[i]), last[order[i]]);
    const std::string path =
        (std::filesystem::path(out_dir) / ("L" + std::to_string(layer) + ".H" + std::to_string(h) + ".svg")).string();
    pp::viz::write_sweep(pp::viz::attention_sweep(a.pattern, a.tokens, title), path, o);
    std::printf("\n  wrote %s\n", path.c_str());
  }
  return 0;
}

// Greedy continuations of each row: plain, and with the ablations if any are given.
int cmd_generate(const pp::Model& m, const std::shared_ptr<pp::Cache>& cache, const Prompts& prompts, int n_tokens,
                 const std::vector<std::string>& zero) {
  const pp::Batch batch = prompts.batch(m, "input");
  const pp::Generation plain = pp::generate(m, batch, n_tokens);
  std::optional<pp::Generation> ablated;
  if (!zero.empty()) {
    pp::RunOptions o;
    o.interventions = ablations(m, cache, batch, zero, {});
    ablated = pp::generate(m, batch, n_tokens, o);
  }
  for (int64_t b = 0; b < batch.size; ++b) {
    const std::vector<int32_t> row(batch.ids.begin() + b * batch.seq + (batch.seq - batch.length(b)),
                                   batch.ids.begin() + (b + 1) * batch.seq);
    std::printf("row %lld: %s\n", static_cast<long long>(b), text_of(m, row).c_str());
    std::printf("  %-14s %s\n", "plain", text_of(m, plain.tokens[b]).c_str());
    if (ablated)
      std::printf("  %-14s %s%s\n", ("--zero " + join(zero, " ")).c_str(), text_of(m, ablated->tokens[b]).c_str(),
                  ablated->tokens[b] == plain.tokens[b] ? "   (the same)" : "");
  }
  return 0;
}

// The logit lens at one position: per reading, the top tokens of one row and a metric over the
// rows (KL from the model's own output, or the answers' metric); --heatmap / --out: p(next token)
// at every (reading, position).
int cmd_lens(const pp::Model& m, const std::shared_ptr<pp::Cache>& cache, ExperimentSpec spec, int64_t position,
             int top, int64_t row, const Outputs& outputs) {
  const bool answers = !spec.answer.empty() || !spec.answer_ids.empty();
  if (spec.metric.empty())
    spec.metric = !answers ? "kl" : (!spec.wrong.empty() || !spec.wrong_ids.empty()) ? "logit-diff" : "logprob";
  spec.metric_positions = std::to_string(position);
  const Experiment x = spec.build(m);
  const pp::Batch& batch = x.clean;
  if (row < 0 || row >= batch.size)
    throw pp::InputError("--row " + std::to_string(row) + ": the input has " + std::to_string(batch.size) + " rows");
  const int64_t p = pp::resolve_position(position, batch.seq, "logit lens: position");  // before the work
  const pp::LogitLens lens = pp::logit_lens(m, batch, without_logits(cache));
  const pp::Tensor logits = lens.logits(m, p);        // [R, B, V]
  const pp::Tensor scores = lens.score(m, x.metric);  // [R, B]
  const int64_t R = lens.readings(), B = batch.size, V = m.config().vocab_size;
  std::printf("logit lens at position %lld ('%s' of row %lld); %s: the mean over %lld rows\n",
              static_cast<long long>(p), token_text(m, batch.id(row, p)).c_str(), static_cast<long long>(row),
              x.metric.kind == pp::MetricKind::KL ? "KL(model || reading)" : x.metric.name().c_str(),
              static_cast<long long>(B));
  std::printf("  %-12s %-58s %s\n", "reading", "top next tokens of the row (p)", "metric");
  for (int64_t r = 0; r < R; ++r) {
    const TopTokens best = top_tokens(logits.data() + (r * B + row) * V, V, top);
    std::string tokens;
    for (size_t i = 0; i < best.ids.size(); ++i) {
      char prob[32];
      std::snprintf(prob, sizeof prob, " %.2f  ", best.probs[i]);
      tokens.append("'").append(token_text(m, best.ids[i])).append("'").append(prob);
    }
    const float mean = pp::metric_mean({scores.data() + r * B, scores.data() + (r + 1) * B});
    std::printf("  %-12s %-58s %+.4f\n", lens.labels[r].c_str(), tokens.c_str(), mean);
  }
  if (!outputs.heatmap.empty() || !outputs.out.empty()) {
    pp::SweepResult map;
    map.title = "logit lens";
    map.metric = "p(next token)";
    map.axes = {"reading", "position"};
    map.labels = {lens.labels, {}};
    for (int64_t t = 0; t < batch.seq; ++t) map.labels[1].push_back(std::to_string(t));
    const pp::Tensor probs = lens.next_token_probs(m);  // [R, T - 1]: the last position predicts no input token
    map.values = pp::Tensor::full({R, batch.seq}, std::nanf(""));
    for (int64_t r = 0; r < R; ++r)
      std::copy(probs.data() + r * (batch.seq - 1), probs.data() + (r + 1) * (batch.seq - 1),
                map.values.data_mut() + r * batch.seq);
    outputs.write(m, batch, map, "", pp::viz::Baseline::None);
  }
  print_warnings(x.warnings);
  return 0;
}

// Direct logit attribution: each head's, MLP's and embedding's share of the logit difference.
int cmd_dla(const pp::Model& m, const std::shared_ptr<pp::Cache>& cache, ExperimentSpec spec, int64_t position, int top,
            const Outputs& outputs) {
  const bool wrong = !spec.wrong.empty() || !spec.wrong_ids.empty() || !spec.prompts.empty();
  if (spec.answer.empty() && spec.answer_ids.empty() && spec.prompts.empty())
    throw pp::InputError("dla: give --answer (and --wrong for a logit difference), or --prompts with answers");
  std::vector<std::string> warnings;
  if (!spec.metric.empty())
    warnings.push_back("--metric " + spec.metric + " is not used: direct logit attribution shares out logits");
  spec.metric = wrong ? "logit-diff" : "logprob";  // only to read the tokens
  spec.metric_positions = std::to_string(position);
  Experiment x = spec.build(m);
  x.warnings.insert(x.warnings.begin(), warnings.begin(), warnings.end());
  pp::resolve_position(position, x.clean.seq, "direct logit attribution: position");  // before the work
  const pp::LogitAttribution d = pp::direct_logit_attribution(
      m, x.clean, x.metric.answer, wrong ? x.metric.wrong : std::vector<int32_t>{}, position, without_logits(cache));
  const float total = pp::metric_mean(d.total);
  std::printf("direct logit attribution at position %lld: %s %.4f (mean over %lld rows); the %zu parts sum to it\n",
              static_cast<long long>(d.position), wrong ? "logit difference" : "logit of the answer", total,
              static_cast<long long>(x.clean.size), d.components.size());
  std::vector<size_t> order(d.components.size());
  for (size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return std::fabs(d.values.data()[a]) > std::fabs(d.values.data()[b]); });
  std::printf("  %-14s %10s\n", "part", "share");
  for (size_t i = 0; i < std::min<size_t>(order.size(), static_cast<size_t>(std::max(top, 1))); ++i)
    std::printf("  %-14s %+10.4f\n", d.components[order[i]].name().c_str(), d.values.data()[order[i]]);
  const pp::SweepResult grid = d.heads(m);
  print_sweep(grid, 0.0f);
  outputs.write(m, x.clean, grid, "", pp::viz::Baseline::None);
  print_warnings(x.warnings);
  return 0;
}

}  // namespace pathpatch::cli
