#pragma once
// Option parsing and printing shared by the pathpatch subcommands.
#include <CLI/CLI.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "pathpatch/pathpatch.hpp"
#include "pathpatch/prompts.hpp"
#include "viz/heatmap.hpp"

namespace pathpatch::cli {

constexpr int kBadInput = 1, kUsage = 2, kInternal = 3;  // exit codes, as `pathpatch --help` lists them

// Inputs given as text (--text / --clean / --corrupt) or token ids (--ids / --clean-ids ...), or
// (forward) the clean prompts of a prompt file (--prompts, pathpatch/prompts.hpp).
struct Prompts {
  std::vector<std::string> texts, ids;
  std::string flag;  // "--text" or "--clean", for messages
  std::string file;  // --prompts, where the command offers it
  size_t limit = 0;  // --limit: the first N lines of the file
  std::vector<std::string> where;  // --where FIELD=VALUE: only the lines that hold it
  void add_options(CLI::App* app, const std::string& name, const std::string& what);
  void add_file_options(CLI::App* app);
  Batch batch(const Model& m, const std::string& what) const;  // left-padded; InputError if none given
};

// A clean and a corrupted input and a metric: what `patch` and `paths` need.
struct Experiment {
  Batch clean, corrupted;
  Metric metric;
  std::vector<std::string> warnings;  // options given that the metric does not use, ...
  std::shared_ptr<const PromptSet> prompts;  // with --prompts: its named positions

  // A position given on the command line: an integer (negative from the end), or a name the prompt
  // file gives (its pos_NAME fields), resolved to its one column (PromptSet::column).
  int position(const std::string& token, const std::string& what) const;
};

// Prints each warning once, on stderr ("pathpatch: warning: ..."), in the order first given.
void print_warnings(const std::vector<std::string>& warnings);

struct ExperimentSpec {
  Prompts clean, corrupt;
  std::string prompts;  // --prompts: a JSONL prompt file instead of the flags
  size_t limit = 0;     // --limit
  std::vector<std::string> where;  // --where
  std::vector<std::string> answer, wrong;  // texts, one token each
  std::vector<int> answer_ids, wrong_ids;
  std::string metric = "logit-diff";
  std::string metric_positions = "-1";
  bool single_input = false;  // one input (--text / --ids), corrupted = clean: lens, dla
  void add_options(CLI::App* app, bool single_input = false);
  Experiment build(const Model& m) const;
};

// Where sweep results go: --heatmap (svg), --out (csv or json), --circuit (svg/png/pdf/dot).
struct Outputs {
  std::string heatmap, out, circuit;
  float threshold = 0.1f;
  float limit = 0;        // --limit-colour: the heatmap's colours span [-limit, limit]; 0: the largest |value|
  bool per_head = false;  // --per-head: one heatmap per head (z, q, k, v, pattern, result sweeps)
  void add_options(CLI::App* app);
  // Before the work: InputError for a name whose extension says no format this option writes, or
  // IoError for a folder that does not exist (a long sweep must not end in a refusal).
  void check() const;
  // `suffix`, if given, goes before the extension (one file per site). Pictures show each value
  // minus `baseline` (the unpatched run the patches move away from).
  void write(const Model& m, const Batch& clean, const SweepResult& sweep, const std::string& suffix,
             viz::Baseline baseline) const;
};

// Where a sweep (patch, paths) keeps its finished units, so that a stopped run loses nothing:
// --resume DIR, or without it (one process) a private folder of the user's in $TMPDIR named after
// the experiment (the command, the folder it runs in, the prompt file's bytes, the model's files),
// locked while a run uses it; the same command goes on from it. It goes when the sweep succeeds,
// or fails with nothing kept.
class SweepUnits {
 public:
  SweepUnits(const std::string& resume, const std::string& stamp, const std::string& model_dir,
             const std::string& prompts_file, Shard shard, bool root, int processes);
  ~SweepUnits();
  SweepUnits(const SweepUnits&) = delete;
  SweepUnits& operator=(const SweepUnits&) = delete;

  UnitLog* log();         // null: none kept (several processes without --resume, or no private folder)
  void announce_stop();   // from now on Ctrl-C (SIGINT, SIGTERM) says where the units are
  void finish(bool succeeded);

 private:
  class Counted;
  bool claim_private_folder();
  std::string folder_;
  bool root_ = true, automatic_ = false;
  int lock_fd_ = -1;
  std::unique_ptr<UnitLogFile> file_;
  std::unique_ptr<Counted> counted_;
};

// A progress bar on stderr for work longer than a second; silent when stderr is not a terminal.
class ProgressBar {
 public:
  explicit ProgressBar(std::string what) : what_(std::move(what)), start_(std::chrono::steady_clock::now()) {}
  ~ProgressBar();
  Progress callback();

 private:
  void show(size_t done, size_t total);
  std::string what_;
  std::chrono::steady_clock::time_point start_;
  bool shown_ = false;
};

std::vector<std::string> split_list(const std::string& s, char sep = ',');
std::string join(const std::vector<std::string>& parts, const std::string& sep);
std::vector<int> parse_ints(const std::string& s, const std::string& what);
int parse_int(const std::string& s, const std::string& what);  // exactly one
uint64_t parse_bytes(const std::string& s, const std::string& what);  // 1000, 512K, 64M, 4G (powers of 1024)
void parse_positions(const std::string& spec, Sites& sites);
// logits | q:L.H | k:L.H | v:L.H | input:L.H (one query head) | k:L.gG | v:L.gG | input:L.gG (every
// query head of key/value group G: under grouped-query attention, the group's shared keys/values);
// a head's input may end in @P,P,... (its positions only; negative from the end): q:2.0@-1.
// Positions are integers or names the prompt file gives (q:2.0@s2; Experiment::position).
std::vector<Receiver> parse_receivers(const std::string& spec, const Model& m, const Experiment& x);
// "SPEC@P,P,..." -> (SPEC, positions); no '@': (spec, {}).
std::pair<std::string, std::vector<int>> split_positions(const std::string& spec, const std::string& what,
                                                         const Experiment& x);
std::vector<int> parse_positions(const std::string& list, const std::string& what, const Experiment& x);
// L.H,L.H or mlp:L, each with @P,P,... for its output at those positions only: 0.1@-1,mlp:0.
std::vector<Sender> parse_senders(const std::string& spec, const Experiment& x);

const Tokenizer& require_tokenizer(const Model& m);
std::string default_model_dir();  // the zoo's smallest model
// The k most likely tokens of one row of logits [V] (k clamped to 1..V), most likely first, with
// their probabilities, and the row's log-normaliser (log-sum-exp, in double).
struct TopTokens {
  std::vector<int> ids;
  std::vector<double> probs;
  double log_z = 0;
};
TopTokens top_tokens(const float* logits, int64_t V, int k);
void print_top_tokens(const Model& m, const Batch& batch, const Tensor& logits, int top);
// Prints the numbers: a table, or (three axes, or more than kMaxTableColumns columns: 512
// positions do not fit a terminal) the ten cells farthest from `base`, the unpatched value.
constexpr int64_t kMaxTableColumns = 24;
void print_sweep(const SweepResult& sweep, float base);

int run_demo(const Model& model, const std::string& out_dir, const std::shared_ptr<Cache>& cache);

// The commands that read one input (cli/reading.cpp); each returns the exit code.
int cmd_forward(const Model& m, const std::shared_ptr<Cache>& cache, const Prompts& prompts, int top,
                bool each_position, const std::string& dump, const std::string& names,
                const std::vector<std::string>& zero, const std::vector<std::string>& mean);
int cmd_attention(const Model& m, const Prompts& prompts, int layer, int head, int row, const std::string& out_dir);
int cmd_generate(const Model& m, const std::shared_ptr<Cache>& cache, const Prompts& prompts, int n_tokens,
                 const std::vector<std::string>& zero);
int cmd_lens(const Model& m, const std::shared_ptr<Cache>& cache, ExperimentSpec spec, int64_t position, int top,
             int64_t row, const Outputs& outputs);
int cmd_dla(const Model& m, const std::shared_ptr<Cache>& cache, ExperimentSpec spec, int64_t position, int top,
            const Outputs& outputs);

// Before the work: InputError unless `path` ends in one of `extensions` (".svg", ...), IoError if
// its folder does not exist. Nothing for an empty path (the option was not given).
void check_output_path(const std::string& path, const std::string& flag, const std::vector<std::string>& extensions);

// Creates `dir` (and its parents) for output files: IoError naming it if that fails (a file in the
// way, no permission).
void prepare_output_folder(const std::string& dir, const std::string& what);

}  // namespace pathpatch::cli
