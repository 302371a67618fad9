#include "pathpatch/rules.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <map>
#include <set>
#include <unordered_map>

#include "graph/error.hpp"

namespace pathpatch {

PathRules& PathRules::add(std::string pattern, int input) {
  rules_.push_back(PathRule{std::move(pattern), input});
  return *this;
}

PathRules& PathRules::otherwise(int input) {
  default_ = input;
  return *this;
}

namespace {

// `*` matches a run of characters other than '.', `?` one such character.
bool glob_match(const char* p, const char* s) {
  if (!*p) return !*s;
  if (*p == '*') {
    while (p[1] == '*') ++p;  // `**` is `*`: without this, k stars in a row backtrack in O(len^k)
    for (const char* t = s;; ++t) {
      if (glob_match(p + 1, t)) return true;
      if (!*t || *t == '.') return false;
    }
  }
  if (!*s) return false;
  if (*p == '?') return *s != '.' && glob_match(p + 1, s + 1);
  return *p == *s && glob_match(p + 1, s + 1);
}

// ---- Thompson NFA ---------------------------------------------------------------------------

constexpr int kAny = -2;  // the atom of `...`: every name

struct NfaState {
  std::vector<int> eps;
  int atom = -1;  // index into atoms, kAny, or -1 (no labelled edge)
  int next = -1;
  int accept = -1;  // rule index accepted here
};

struct Fragment {
  int start, end;
};

class Builder {
 public:
  Builder(const std::vector<std::string>& alphabet, std::vector<std::vector<bool>>& atoms, std::vector<NfaState>& nfa)
      : alphabet_(alphabet), atoms_(atoms), nfa_(nfa) {}

  Fragment parse(const std::string& pattern) {
    text_ = pattern;
    pos_ = 0;
    depth_ = 0;
    Fragment f = alternation();
    skip();
    if (pos_ < text_.size()) fail("unexpected '" + std::string(1, text_[pos_]) + "'");
    return f;
  }

  int state() {
    nfa_.emplace_back();
    return static_cast<int>(nfa_.size() - 1);
  }

  Fragment any_sequence() {  // `...`
    int s = state(), e = state();
    nfa_[s].atom = kAny;
    nfa_[s].next = s;
    nfa_[s].eps.push_back(e);
    return {s, e};
  }

  Fragment concat(Fragment a, Fragment b) {
    nfa_[a.end].eps.push_back(b.start);
    return {a.start, b.end};
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw RuleError("path rule '" + text_ + "': " + what + " at character " + std::to_string(pos_ + 1));
  }
  void skip() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  static bool name_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '*' || c == '?';
  }

  Fragment alternation() {
    std::vector<Fragment> alts{sequence()};
    skip();
    while (pos_ < text_.size() && text_[pos_] == '|') {
      ++pos_;
      alts.push_back(sequence());
      skip();
    }
    if (alts.size() == 1) return alts[0];
    int s = state(), e = state();
    for (const Fragment& f : alts) {
      nfa_[s].eps.push_back(f.start);
      nfa_[f.end].eps.push_back(e);
    }
    return {s, e};
  }

  Fragment sequence() {
    int s = state();
    Fragment f{s, s};
    while (true) {
      skip();
      if (pos_ >= text_.size() || text_[pos_] == ')' || text_[pos_] == '|') return f;
      f = concat(f, item());
    }
  }

  Fragment item() {
    if (text_.compare(pos_, 3, "...") == 0) {
      pos_ += 3;
      return any_sequence();
    }
    if (text_[pos_] == '(') {
      // The parser recurses once per group: bound the nesting so that no pattern overflows the stack.
      if (++depth_ > kMaxDepth) fail("groups nested more than " + std::to_string(kMaxDepth) + " deep");
      ++pos_;
      Fragment g = alternation();
      --depth_;
      skip();
      if (pos_ >= text_.size() || text_[pos_] != ')') fail("missing ')'");
      ++pos_;
      if (pos_ < text_.size() && (text_[pos_] == '*' || text_[pos_] == '+' || text_[pos_] == '?')) {
        char op = text_[pos_++];
        int s = state(), e = state();
        nfa_[s].eps.push_back(g.start);
        if (op != '+') nfa_[s].eps.push_back(e);
        nfa_[g.end].eps.push_back(e);
        if (op != '?') nfa_[g.end].eps.push_back(g.start);
        return {s, e};
      }
      return g;
    }
    size_t begin = pos_;
    while (pos_ < text_.size() && name_char(text_[pos_])) ++pos_;
    if (pos_ == begin) fail("expected a name, '...' or '('");
    std::string glob = text_.substr(begin, pos_ - begin);
    std::vector<bool> members(alphabet_.size());
    bool any = false;
    for (size_t i = 0; i < alphabet_.size(); ++i) any |= members[i] = glob_match(glob.c_str(), alphabet_[i].c_str());
    if (!any) {
      pos_ = begin;
      fail("'" + glob + "' matches no path name of this model" + did_you_mean(glob, alphabet_));
    }
    atoms_.push_back(std::move(members));
    int s = state(), e = state();
    nfa_[s].atom = static_cast<int>(atoms_.size() - 1);
    nfa_[s].next = e;
    return {s, e};
  }

  const std::vector<std::string>& alphabet_;
  std::vector<std::vector<bool>>& atoms_;
  std::vector<NfaState>& nfa_;
  std::string text_;
  size_t pos_ = 0;
  static constexpr int kMaxDepth = 100;
  int depth_ = 0;
};

}  // namespace

// ---- The compiled automaton ----------------------------------------------------------------

struct CompiledRules::Impl {
  const Graph* graph = nullptr;
  int64_t seq = 0;
  std::vector<std::string> alphabet;               // every path name of the model
  std::unordered_map<std::string, int> symbol;      // name -> index in alphabet
  std::vector<int> klass;                           // symbol -> class (symbols no atom tells apart)
  int classes = 0;
  std::vector<std::vector<int>> delta;              // minimised DFA: [state][class]
  std::vector<int> out;                             // input read by paths ending in a state
  int start = 0;

  int step(int s, const std::string& name) const {
    auto it = symbol.find(name);
    return it == symbol.end() ? -1 : delta[s][klass[it->second]];
  }
  int step(int s, int sym) const { return delta[s][klass[sym]]; }
  int sym(const std::string& name) const { return symbol.at(name); }

  // Where the paths entering a sub-layer continue, from state u (after "aL aL.head" or
  // "fL fL.head"): per position when the rules tell positions apart; otherwise, for attention, per
  // head and input (q, k, v) after their names; for an MLP, at u itself.
  struct SubPlan {
    bool positions = false;
    std::vector<int> pos;                  // [T]
    std::vector<std::array<int, 3>> head;  // [H][q, k, v]
    int u = 0;
  };
  SubPlan plan(const Node& sub, int u) const;
  // The lambda form: whether a nano-style walk must split here to see the same states.
  bool residual_splits(NodeId residual, int s) const;
};

CompiledRules::Impl::SubPlan CompiledRules::Impl::plan(const Node& sub, int u) const {
  SubPlan p;
  p.u = u;
  for (int64_t P = 0; P < seq; ++P) {
    p.pos.push_back(step(u, sub.name + ".pos" + std::to_string(P)));
    p.positions |= p.pos.back() != p.pos[0];
  }
  if (sub.kind != NodeKind::Attention) return p;
  bool heads_differ = false;
  for (int H = 0; H < graph->n_heads; ++H) {
    std::string head = sub.name + std::to_string(H);
    int h = step(u, head);
    p.head.push_back({step(h, head + ".q"), step(h, head + ".k"), step(h, head + ".v")});
    for (int r : p.head.back()) heads_differ |= r != p.head[0][0];
  }
  if (heads_differ && p.positions)
    throw RuleError("the rules tell apart both the heads and the positions of " + sub.name +
                    "; a sub-layer splits by one or the other");
  return p;
}

bool CompiledRules::Impl::residual_splits(NodeId residual, int s) const {
  const Node& x = graph->node(residual);
  const Node& sub = graph->node(x.inputs[1]);
  int t = step(s, x.name);
  SubPlan p = plan(sub, step(t, sub.name));
  if (t != s) return true;
  if (p.positions) return true;
  if (sub.kind != NodeKind::Attention) return p.u != s;
  for (const auto& roles : p.head)
    for (int r : roles)
      if (r != s) return true;
  return false;
}

CompiledRules::CompiledRules(const Model& model, int64_t seq, const PathRules& rules) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  const Graph& g = model.graph();
  m.graph = &g;
  m.seq = seq;
  for (const Node& n : g.nodes()) {
    m.alphabet.push_back(n.name);
    if (n.kind == NodeKind::Attention || n.kind == NodeKind::Mlp) {
      for (int64_t P = 0; P < seq; ++P) m.alphabet.push_back(n.name + ".pos" + std::to_string(P));
      if (n.kind == NodeKind::Attention)
        for (int H = 0; H < g.n_heads; ++H)
          for (const char* r : {"", ".q", ".k", ".v"}) m.alphabet.push_back(n.name + std::to_string(H) + r);
    }
  }
  for (size_t i = 0; i < m.alphabet.size(); ++i) m.symbol[m.alphabet[i]] = static_cast<int>(i);

  // NFA: start --eps--> (... pattern ... accept_i) for each rule i.
  std::vector<NfaState> nfa;
  std::vector<std::vector<bool>> atoms;
  Builder b(m.alphabet, atoms, nfa);
  int start = b.state();
  for (size_t i = 0; i < rules.rules().size(); ++i) {
    Fragment f = b.parse(rules.rules()[i].pattern);
    f = b.concat(b.concat(b.any_sequence(), f), b.any_sequence());
    nfa[start].eps.push_back(f.start);
    nfa[f.end].accept = static_cast<int>(i);
  }

  // Alphabet classes: symbols that every atom treats alike.
  std::map<std::vector<bool>, int> signature;
  for (size_t s = 0; s < m.alphabet.size(); ++s) {
    std::vector<bool> sig;
    for (const auto& a : atoms) sig.push_back(a[s]);
    auto [it, inserted] = signature.emplace(sig, static_cast<int>(signature.size()));
    m.klass.push_back(it->second);
  }
  m.classes = static_cast<int>(signature.size());
  std::vector<int> representative(m.classes);
  for (size_t s = 0; s < m.alphabet.size(); ++s) representative[m.klass[s]] = static_cast<int>(s);

  // Subset construction.
  auto closure = [&](std::set<int> states) {
    std::vector<int> stack(states.begin(), states.end());
    while (!stack.empty()) {
      int q = stack.back();
      stack.pop_back();
      for (int e : nfa[q].eps)
        if (states.insert(e).second) stack.push_back(e);
    }
    return states;
  };
  std::map<std::set<int>, int> dfa_index;
  std::vector<std::set<int>> dfa_sets;
  std::vector<std::vector<int>> dfa_delta;
  auto intern = [&](std::set<int> set) {
    auto [it, inserted] = dfa_index.emplace(set, static_cast<int>(dfa_sets.size()));
    if (inserted) dfa_sets.push_back(std::move(set));
    return it->second;
  };
  intern(closure({start}));
  for (size_t d = 0; d < dfa_sets.size(); ++d) {
    std::vector<int> row(m.classes);
    for (int c = 0; c < m.classes; ++c) {
      std::set<int> next;
      for (int q : dfa_sets[d]) {
        const NfaState& n = nfa[q];
        if (n.atom == kAny || (n.atom >= 0 && atoms[n.atom][representative[c]])) next.insert(n.next);
      }
      row[c] = intern(closure(std::move(next)));
    }
    dfa_delta.push_back(std::move(row));
    if (dfa_sets.size() > 100000) throw RuleError("the path rules compile to more than 100000 automaton states");
  }
  std::vector<int> dfa_out;
  for (const auto& set : dfa_sets) {
    int best = -1;
    for (int q : set)
      if (nfa[q].accept >= 0 && (best < 0 || nfa[q].accept < best)) best = nfa[q].accept;
    dfa_out.push_back(best < 0 ? rules.default_input() : rules.rules()[best].input);
  }

  // Moore minimisation: states are equivalent when every continuation reads the same input.
  const int n = static_cast<int>(dfa_sets.size());
  std::vector<int> block(n);
  {
    std::map<int, int> by_out;
    for (int d = 0; d < n; ++d) block[d] = by_out.emplace(dfa_out[d], static_cast<int>(by_out.size())).first->second;
  }
  for (int count = -1;;) {
    std::map<std::vector<int>, int> sig_block;
    std::vector<int> next(n);
    for (int d = 0; d < n; ++d) {
      std::vector<int> sig{block[d]};
      for (int c = 0; c < m.classes; ++c) sig.push_back(block[dfa_delta[d][c]]);
      next[d] = sig_block.emplace(std::move(sig), static_cast<int>(sig_block.size())).first->second;
    }
    block = std::move(next);
    if (static_cast<int>(sig_block.size()) == count) break;
    count = static_cast<int>(sig_block.size());
  }
  int blocks = *std::max_element(block.begin(), block.end()) + 1;
  m.delta.assign(blocks, std::vector<int>(m.classes));
  m.out.assign(blocks, 0);
  for (int d = 0; d < n; ++d) {
    for (int c = 0; c < m.classes; ++c) m.delta[block[d]][c] = block[dfa_delta[d][c]];
    m.out[block[d]] = dfa_out[d];
  }
  m.start = block[0];
}

CompiledRules::~CompiledRules() = default;
CompiledRules::CompiledRules(CompiledRules&&) noexcept = default;

int CompiledRules::start() const { return impl_->start; }
int CompiledRules::step(int state, const std::string& name) const { return impl_->step(state, name); }
int CompiledRules::outcome(int state) const { return impl_->out[state]; }
size_t CompiledRules::states() const { return impl_->delta.size(); }

namespace {

int run_word(const CompiledRules::Impl& m, const Path& p, size_t count) {
  int s = m.start;
  for (size_t i = 0; i < count; ++i) s = m.step(s, m.sym(std::string(p[i])));
  return s;
}

}  // namespace

WhichFn CompiledRules::which() const {
  const Impl* m = impl_.get();
  return [m](const Path& p) { return m->out[run_word(*m, p, p.size())]; };
}

BranchFn CompiledRules::branch() const {
  const Impl* m = impl_.get();
  return [m](const Path& p) {
    const std::string last(p.back());
    int node = m->graph->lookup_node(last);
    if (node >= 0 && m->graph->node(node).kind == NodeKind::Residual)
      return m->residual_splits(node, run_word(*m, p, p.size() - 1)) ? Split::Edges : Split::None;
    int s = run_word(*m, p, p.size());
    if (node >= 0) {  // a sub-layer: aL.head or fL.head
      Impl::SubPlan plan = m->plan(m->graph->node(node), s);
      if (plan.positions) return Split::Positions;
      for (const auto& roles : plan.head)
        for (int r : roles)
          if (r != s) return Split::Edges;
      return Split::None;
    }
    // aL.headH: split its q, k and v when their names lead elsewhere than the head's own.
    size_t dot = last.find(".head");
    int layer = std::stoi(last.substr(1, dot - 1));
    int head = std::stoi(last.substr(dot + 5));
    const Node& sub = m->graph->node(m->graph->lookup_node(last.substr(0, dot + 5)));
    std::string base = sub.name + std::to_string(head);
    (void)layer;
    for (const char* r : {".q", ".k", ".v"})
      if (m->step(s, base + r) != s) return Split::Edges;
    return Split::None;
  };
}

// ---- Tracing with rules: memo on (node, state) ---------------------------------------------

namespace {

class RuleTracer {
 public:
  RuleTracer(const CompiledRules::Impl& m, Tracer& t, const Graph& g) : m_(m), t_(t), g_(g) {}

  ExprId value(NodeId id, int s) {
    auto key = std::make_pair(id, s);
    if (auto it = memo_.find(key); it != memo_.end()) return it->second;
    ++visits_;
    const Node& n = g_.node(id);
    ExprId out = 0;
    switch (n.kind) {
      case NodeKind::Final:
        out = t_.final(value(n.inputs[0], m_.step(s, m_.sym(n.name))));
        break;
      case NodeKind::Embed:
        out = t_.embed(m_.out[m_.step(s, m_.sym(n.name))]);
        break;
      case NodeKind::Residual: {
        // Always evaluated split: when both edges continue alike, the tracer's canonical forms
        // make this the very expression of the unsplit node.
        const Node& sub = g_.node(n.inputs[1]);
        int u = m_.step(m_.step(s, m_.sym(n.name)), m_.sym(sub.name));
        out = t_.residual(id, value(n.inputs[0], s), sublayer(n.inputs[1], u));
        break;
      }
      case NodeKind::Attention:
      case NodeKind::Mlp:
        PP_CHECK(false, "sub-layers are reached through their residual node");
    }
    memo_[key] = out;
    return out;
  }

  uint64_t visits() const { return visits_; }

 private:
  ExprId sublayer(NodeId id, int u) {
    const Node& sub = g_.node(id);
    const NodeId input = sub.inputs[0];
    CompiledRules::Impl::SubPlan plan = m_.plan(sub, u);
    const bool attn = sub.kind == NodeKind::Attention;
    if (plan.positions) {
      std::vector<ExprId> parts;
      for (int state : plan.pos) parts.push_back(value(input, state));
      ExprId x = t_.rows(id, parts);
      return attn ? t_.attention(sub.layer, x) : t_.mlp(sub.layer, x);
    }
    if (!attn) return t_.mlp(sub.layer, value(input, u));
    std::vector<ExprId> qkv;
    for (const auto& roles : plan.head)
      for (int r : roles) qkv.push_back(value(input, r));
    return t_.attention_heads(sub.layer, qkv);
  }

  const CompiledRules::Impl& m_;
  Tracer& t_;
  const Graph& g_;
  std::map<std::pair<NodeId, int>, ExprId> memo_;
  uint64_t visits_ = 0;
};

}  // namespace

ExprId CompiledRules::trace(Tracer& tracer, uint64_t* visits) const {
  RuleTracer rt(*impl_, tracer, *impl_->graph);
  ExprId root = rt.value(impl_->graph->output(), impl_->start);
  if (visits) *visits = rt.visits();
  return root;
}

void PathRules::check_inputs(size_t count) const {
  for (const PathRule& r : rules_)
    if (r.input < 0 || r.input >= static_cast<int>(count))
      throw RuleError("path rule '" + r.pattern + "' reads input " + std::to_string(r.input) + "; there are " +
                      std::to_string(count) + " inputs");
  if (default_ < 0 || default_ >= static_cast<int>(count))
    throw RuleError("the rules' default input " + std::to_string(default_) + " does not exist");
}

Result run(const Model& model, const std::vector<Batch>& inputs, const PathRules& rules, const RunOptions& options) {
  check_inputs(model, inputs);
  rules.check_inputs(inputs.size());
  CompiledRules compiled(model, inputs[0].seq, rules);
  return detail::run_traced(model, inputs, options,
                            [&](Tracer& tracer, uint64_t& visits) { return compiled.trace(tracer, &visits); });
}

}  // namespace pathpatch
