#pragma once
// Path rules: a declarative alternative to branch/which lambdas, with a bounded cost.
//
// A rule is a pattern over path names and the input the matching paths read:
//
//   pp::PathRules rules;
//   rules.add("ln_final (f* f*.head)* a3 a3.head a3.head5", 1);   // through a3.head5 along residual
//                                                                  // edges and MLPs -> corrupted
//   pp::Result r = pp::run(model, {clean, corrupt}, rules);        // every other path reads input 0
//
// Patterns match a contiguous part of the path (an implicit `...` at each end; `ln_final` and `emb`
// anchor them to the output and the input). A path's words are the names of graph/path.hpp, as a
// walk that splits everything would see them: the residual edge of aL / fL adds no name; the
// attention edge adds `aL aL.head aL.headH aL.headH.q|k|v` (every path through an attention names
// its head and which input of it), or `aL aL.head aL.head.posP` where the rules tell the
// positions of that sub-layer apart; the MLP edge adds `fL fL.head`, and `fL.head.posP` likewise.
//   name      a path name; `*` matches any run of characters other than '.', `?` one such character
//             (`a*` is every aL, `a1.head*` every head of layer 1, `f*.head` every MLP)
//   ...       any sequence of names, possibly empty
//   ( A | B ) alternatives; a group may be followed by `*`, `+` or `?`
// The first rule whose pattern matches a path decides its input; no match: the default (0).
//
// The engine splits only where rules tell paths apart: the rules compile to a minimised automaton,
// and the memo key is (node, automaton state), so the work is at most nodes x states however many
// paths the rules distinguish.
#include <memory>
#include <string>
#include <vector>

#include "pathpatch/run.hpp"

namespace pathpatch {

struct PathRule {
  std::string pattern;
  int input = 0;
};

class PathRules {
 public:
  PathRules& add(std::string pattern, int input);
  PathRules& otherwise(int input);  // the input of paths no rule matches (default 0)
  const std::vector<PathRule>& rules() const { return rules_; }
  int default_input() const { return default_; }
  void check_inputs(size_t count) const;  // RuleError if a rule reads an input that does not exist

 private:
  std::vector<PathRule> rules_;
  int default_ = 0;
};

// Rules compiled against one model and sequence length: a minimised DFA over its path names.
class CompiledRules {
 public:
  // RuleError for a pattern that does not parse or a name that matches no path name of the model.
  CompiledRules(const Model& model, int64_t seq, const PathRules& rules);
  ~CompiledRules();
  CompiledRules(CompiledRules&&) noexcept;

  int start() const;
  int step(int state, const std::string& name) const;  // -1 for a name the model's paths never hold
  int outcome(int state) const;  // the input a path reads when its name list leads here
  size_t states() const;

  // The experiment's provenance, built with `tracer` (memoised on node and automaton state).
  ExprId trace(Tracer& tracer, uint64_t* visits = nullptr) const;

  // The same experiment as branch/which lambdas (exponential to walk; for cross-checks and small
  // models).
  WhichFn which() const;
  BranchFn branch() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// Runs the experiment the rules describe; trace cost is bounded by nodes x automaton states.
Result run(const Model& model, const std::vector<Batch>& inputs, const PathRules& rules,
           const RunOptions& options = {});

}  // namespace pathpatch
