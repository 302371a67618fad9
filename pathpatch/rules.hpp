#pragma once
// Path rules: a declarative alternative to branch/which lambdas, with a bounded cost.
//
// A rule is a pattern over path names and the input the matching paths read:
//
//   pp::PathRules rules;
//   rules.add("ln_final (f* f*.head)* a3 a3.head a3.head5", 1);   // through a3.head5 along residual
//                                                                  // edges and MLPs -> corrupted
//   rules.add("a2.head0.q.pos14", 1);   // head 2.0's query at position 14, and all it reads
//   pp::Result r = pp::run(model, {clean, corrupt}, rules);        // every other path reads input 0
//
// Patterns match a contiguous part of the path (an implicit `...` at each end; `ln_final` and `emb`
// anchor them to the output and the input). A path's words are the names of graph/path.hpp, as a
// walk that splits everything would see them: the residual edge of aL / fL adds no name; the
// attention edge adds `aL aL.head aL.headH aL.headH.q|k|v` (every path through an attention names
// its head and which input of it, then `aL.headH.q.posP` where the rules tell the positions of
// that input apart), or `aL aL.head aL.head.posP` where the rules tell the positions of that
// sub-layer apart; the MLP edge adds `fL fL.head`, and `fL.head.posP` likewise; a path from the
// output starts `ln_final`, then `ln_final.posP` where the rules tell its rows apart. A position's name is
// in a path only where the rules tell positions apart: a rule naming every position of an input
// matches no path (name none instead).
//   name      a path name; `*` matches any run of characters other than '.', `?` one such character
//             (`a*` is every aL, `a1.head*` every head of layer 1, `f*.head` every MLP)
//   ...       any sequence of names, possibly empty
//   ( A | B ) alternatives; a group may be followed by `*`, `+` or `?`
// The first rule whose pattern matches a path decides its input; no match: the default (0).
//
// The same patterns can be built as values, without text (path patching does):
//   using P = pp::Pattern;
//   P mlps = P::sequence({P::names(pp::NameSet::every_layer(pp::PathName::residual(pp::Block::Mlp, 0))),
//                         P::names(pp::NameSet::every_layer(pp::PathName::sublayer(pp::Block::Mlp, 0)))});
//   rules.add(P::sequence({P::name(pp::PathName::ln_final()), mlps.star(), P::name(...)}), 1);
//
// The engine splits only where rules tell paths apart: the rules compile to a minimised automaton,
// and the memo key is (node, automaton state), so the work is at most nodes x states however many
// paths the rules distinguish. Compiling is bounded too: rules whose automaton construction would
// take more than 8 million steps (a thousand wildcards in a row) are refused with a RuleError.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pathpatch/run.hpp"

namespace pathpatch {

class Tracer;

// Path names that agree with `like` on every field not left open: a typed `a*` or `a3.head*`.
struct NameSet {
  PathName like;
  bool any_layer = false, any_head = false, any_pos = false;

  static NameSet exactly(const PathName& n) { return {n}; }
  static NameSet every_layer(const PathName& n) { return {n, true}; }
  bool contains(const PathName& n) const;
  std::string str() const;  // as a glob: "f*", "a3.head*", "a*.head*.k"
};

// A pattern over path names (the rule language above, as a value).
class Pattern {
 public:
  static Pattern name(const PathName& n);      // exactly this name
  static Pattern names(const NameSet& set);    // any name of the set
  static Pattern glob(std::string glob);       // names whose text matches (`*`, `?`)
  static Pattern anything();                   // `...`
  static Pattern sequence(std::vector<Pattern> parts);
  static Pattern either(std::vector<Pattern> alternatives);  // ( A | B )
  Pattern star() const;
  Pattern plus() const;
  Pattern optional() const;
  // The text form; RuleError naming the character where it does not parse.
  static Pattern parse(std::string_view text);
  std::string str() const;

  struct Node;
  const Node& node() const { return *node_; }

 private:
  explicit Pattern(std::shared_ptr<const Node> n) : node_(std::move(n)) {}
  Pattern repeat(char op) const;
  std::shared_ptr<const Node> node_;
};

struct PathRule {
  Pattern pattern;
  int input = 0;
};

class PathRules {
 public:
  PathRules& add(Pattern pattern, int input);
  PathRules& add(std::string_view pattern, int input);  // parsed now: RuleError if it does not parse
  PathRules& otherwise(int input);  // the input of paths no rule matches (default 0)
  const std::vector<PathRule>& rules() const { return rules_; }
  int default_input() const { return default_; }
  void check_inputs(size_t count) const;  // RuleError if a rule reads an input that does not exist
  std::string str() const;                // one "PATTERN => INPUT" line per rule, then the default

 private:
  std::vector<PathRule> rules_;
  int default_ = 0;
};

// A deterministic automaton over a model's path names, given directly: delta[state][symbol], the
// symbols being PathAlphabet(graph, seq)'s interned entries in order (the heads' inputs' positions
// are not among them: a path passing one stays in its state), and out[state] the input a path
// ending there reads. For experiments whose rules are too many to compile as patterns (a circuit:
// one rule per edge outside it; pathpatch/circuits.hpp builds its automaton from the graph).
struct Automaton {
  std::vector<std::vector<int>> delta;
  std::vector<int> out;
  int start = 0;
};

// Rules compiled against one model and sequence length: a minimised DFA over its path names.
class CompiledRules {
 public:
  // RuleError for a name that matches no path name of the model.
  CompiledRules(const Model& model, int64_t seq, const PathRules& rules);
  CompiledRules(const Model& model, int64_t seq, const Automaton& automaton);  // minimised here
  ~CompiledRules();
  CompiledRules(CompiledRules&&) noexcept;

  int start() const;
  const PathAlphabet& alphabet() const;
  int step(int state, std::string_view name) const;  // -1 for a name the model's paths never hold
  int outcome(int state) const;  // the input a path reads when its name list leads here
  size_t states() const;

  // The experiment's provenance, built with `tracer` (memoised on node and automaton state).
  ExprId trace(Tracer& tracer, uint64_t* visits = nullptr) const;

  // The same experiment as branch/which lambdas (exponential to walk; for cross-checks and small
  // models). They refer to this object, which must outlive them.
  WhichFn which() const;
  BranchFn branch() const;

  struct Impl;  // the automaton over the model's path names (rules.cpp)

 private:
  std::unique_ptr<Impl> impl_;
};

// Runs the experiment the rules describe; trace cost is bounded by nodes x automaton states.
Result run(const Model& model, const std::vector<Batch>& inputs, const PathRules& rules,
           const RunOptions& options = {});
Result run(const Model& model, const std::vector<Batch>& inputs, const CompiledRules& rules,
           const RunOptions& options = {});

}  // namespace pathpatch
