#include "pathpatch/rules.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <unordered_map>

#include "graph/error.hpp"
#include "graph/trace.hpp"
#include "pathpatch/detail/session.hpp"

namespace pathpatch {

// ---- Names and patterns ---------------------------------------------------------------------

bool NameSet::contains(const PathName& n) const {
  return n.kind == like.kind && n.block == like.block && n.role == like.role && (any_layer || n.layer == like.layer) &&
         (any_head || n.head == like.head) && (any_pos || n.pos == like.pos);
}

std::string NameSet::str() const {
  PathName n = like;
  std::string text = n.str_with_layer(any_layer ? "*" : std::to_string(n.layer));
  // Open heads and positions: the number's digits become `*` (the name's last number, or the head
  // before a ".q|k|v").
  auto open = [&](int value, const std::string& after) {
    const std::string digits = std::to_string(value);
    const size_t at = text.rfind(digits + after);
    if (at == std::string::npos) return;
    text.erase(at, digits.size());  // not replace(): GCC 12 warns falsely (-Wrestrict) on it here
    text.insert(at, 1, '*');
  };
  const std::string role = std::string(".") + role_name(n.role);
  if (any_pos && (n.kind == PathName::Position || n.kind == PathName::HeadInputPosition)) open(n.pos, "");
  if (any_head && n.kind == PathName::Head) open(n.head, "");
  if (any_head && n.kind == PathName::HeadInput) open(n.head, role);
  if (any_head && n.kind == PathName::HeadInputPosition)
    open(n.head, role + ".pos" + (any_pos ? std::string("*") : std::to_string(n.pos)));
  return text;
}

struct Pattern::Node {
  enum Kind { Glob, Set, Any, Sequence, Either, Repeat } kind;
  std::string glob;                       // Glob
  NameSet set;                            // Set
  std::vector<Pattern> parts;             // Sequence, Either; Repeat: one
  char op = 0;                            // Repeat: '*', '+' or '?'
};

namespace {

Pattern::Node pattern_node(Pattern::Node::Kind k) {
  Pattern::Node n{k, {}, NameSet{}, {}, 0};
  return n;
}

}  // namespace

Pattern Pattern::name(const PathName& n) { return names(NameSet::exactly(n)); }

Pattern Pattern::names(const NameSet& set) {
  Node n = pattern_node(Node::Set);
  n.set = set;
  return Pattern(std::make_shared<const Node>(std::move(n)));
}

Pattern Pattern::glob(std::string glob) {
  Node n = pattern_node(Node::Glob);
  n.glob = std::move(glob);
  return Pattern(std::make_shared<const Node>(std::move(n)));
}

Pattern Pattern::anything() { return Pattern(std::make_shared<const Node>(pattern_node(Node::Any))); }

Pattern Pattern::sequence(std::vector<Pattern> parts) {
  if (parts.size() == 1) return parts[0];
  Node n = pattern_node(Node::Sequence);
  n.parts = std::move(parts);
  return Pattern(std::make_shared<const Node>(std::move(n)));
}

Pattern Pattern::either(std::vector<Pattern> alternatives) {
  if (alternatives.empty()) throw RuleError("a pattern needs at least one alternative");
  if (alternatives.size() == 1) return alternatives[0];
  Node n = pattern_node(Node::Either);
  n.parts = std::move(alternatives);
  return Pattern(std::make_shared<const Node>(std::move(n)));
}

Pattern Pattern::repeat(char op) const {
  Node n = pattern_node(Node::Repeat);
  n.parts = {*this};
  n.op = op;
  return Pattern(std::make_shared<const Node>(std::move(n)));
}

Pattern Pattern::star() const { return repeat('*'); }
Pattern Pattern::plus() const { return repeat('+'); }
Pattern Pattern::optional() const { return repeat('?'); }

std::string Pattern::str() const {
  const Node& n = *node_;
  switch (n.kind) {
    case Node::Glob: return n.glob;
    case Node::Set: return n.set.str();
    case Node::Any: return "...";
    case Node::Sequence: {
      std::string s;
      for (const Pattern& p : n.parts) s += (s.empty() ? "" : " ") + p.str();
      return s;
    }
    case Node::Either: {
      std::string s;
      for (const Pattern& p : n.parts) s += (s.empty() ? "(" : " | ") + p.str();
      return s + ")";
    }
    case Node::Repeat: {
      const Node& inner = n.parts[0].node();
      const bool grouped = inner.kind == Node::Either;
      return (grouped ? n.parts[0].str() : "(" + n.parts[0].str() + ")") + n.op;
    }
  }
  return "?";
}

// ---- The text form --------------------------------------------------------------------------

namespace {

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Pattern parse() {
    Pattern p = alternation();
    skip();
    if (pos_ < text_.size()) fail("unexpected '" + std::string(1, text_[pos_]) + "'");
    return p;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw RuleError("path rule '" + std::string(text_) + "': " + what + " at character " + std::to_string(pos_ + 1));
  }
  void skip() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  static bool name_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '*' || c == '?';
  }

  Pattern alternation() {
    std::vector<Pattern> alts{sequence()};
    skip();
    while (pos_ < text_.size() && text_[pos_] == '|') {
      ++pos_;
      alts.push_back(sequence());
      skip();
    }
    return Pattern::either(std::move(alts));
  }

  Pattern sequence() {
    std::vector<Pattern> items;
    while (true) {
      skip();
      if (pos_ >= text_.size() || text_[pos_] == ')' || text_[pos_] == '|') return Pattern::sequence(std::move(items));
      items.push_back(item());
    }
  }

  Pattern item() {
    if (text_.compare(pos_, 3, "...") == 0) {
      pos_ += 3;
      return Pattern::anything();
    }
    if (text_[pos_] == '(') {
      // The parser recurses once per group: bound the nesting so that no pattern overflows the stack.
      if (++depth_ > kMaxDepth) fail("groups nested more than " + std::to_string(kMaxDepth) + " deep");
      ++pos_;
      Pattern g = alternation();
      --depth_;
      skip();
      if (pos_ >= text_.size() || text_[pos_] != ')') fail("missing ')'");
      ++pos_;
      if (pos_ < text_.size() && text_[pos_] == '*') return ++pos_, g.star();
      if (pos_ < text_.size() && text_[pos_] == '+') return ++pos_, g.plus();
      if (pos_ < text_.size() && text_[pos_] == '?') return ++pos_, g.optional();
      return g;
    }
    size_t begin = pos_;
    while (pos_ < text_.size() && name_char(text_[pos_])) ++pos_;
    if (pos_ == begin) fail("expected a name, '...' or '('");
    return Pattern::glob(std::string(text_.substr(begin, pos_ - begin)));
  }

  std::string_view text_;
  size_t pos_ = 0;
  static constexpr int kMaxDepth = 100;
  int depth_ = 0;
};

}  // namespace

Pattern Pattern::parse(std::string_view text) { return Parser(text).parse(); }

PathRules& PathRules::add(Pattern pattern, int input) {
  rules_.push_back(PathRule{std::move(pattern), input});
  return *this;
}

PathRules& PathRules::add(std::string_view pattern, int input) { return add(Pattern::parse(pattern), input); }

PathRules& PathRules::otherwise(int input) {
  default_ = input;
  return *this;
}

std::string PathRules::str() const {
  std::string s;
  for (const PathRule& r : rules_) s += r.pattern.str() + " => " + std::to_string(r.input) + "\n";
  return s + "otherwise => " + std::to_string(default_) + "\n";
}

void PathRules::check_inputs(size_t count) const {
  for (const PathRule& r : rules_)
    if (r.input < 0 || r.input >= static_cast<int>(count))
      throw RuleError("path rule '" + r.pattern.str() + "' reads input " + std::to_string(r.input) + "; there are " +
                      std::to_string(count) + " inputs");
  if (default_ < 0 || default_ >= static_cast<int>(count))
    throw RuleError("the rules' default input " + std::to_string(default_) + " does not exist");
}

// ---- Thompson NFA ---------------------------------------------------------------------------

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

constexpr int kAny = -2;  // the atom of `...`: every name
// The most steps compiling a rule set may take (about a second on one core); past it, a RuleError.
constexpr uint64_t kMaxCompileSteps = 8'000'000;
// The most head input positions the atoms of a rule set may name, counted with repeats (each is
// 8 bytes while compiling; every position of every head of GPT-2 small at 1024 positions is 442k).
constexpr uint64_t kMaxHeadPositionMembers = 1'000'000;

// The symbols a pattern's name matches: interned ones as a mask, the heads' inputs' positions
// (PathAlphabet does not intern them) as a sorted list.
struct Atom {
  std::vector<bool> interned;
  std::vector<int> head_positions;
  bool empty() const {
    return head_positions.empty() && std::find(interned.begin(), interned.end(), true) == interned.end();
  }
};

// The heads' inputs' positions aL.headH.R.posP whose layer, head, role and position each pass
// their test: the one way to enumerate them, never all L x H x 3 x T unless a name asks for all.
template <class LayerOk, class HeadOk, class RoleOk, class PosOk>
std::vector<int> head_input_positions(const PathAlphabet& a, int layers, int heads, LayerOk layer_ok, HeadOk head_ok,
                                      RoleOk role_ok, PosOk pos_ok) {
  std::vector<int> Ls, Hs, Ps;
  for (int L = 0; L < layers; ++L)
    if (layer_ok(L)) Ls.push_back(L);
  for (int H = 0; H < heads; ++H)
    if (head_ok(H)) Hs.push_back(H);
  for (int64_t P = 0; P < a.seq(); ++P)
    if (pos_ok(static_cast<int>(P))) Ps.push_back(static_cast<int>(P));
  std::vector<int> out;
  for (int L : Ls)
    for (int H : Hs)
      for (Role r : {Role::Q, Role::K, Role::V})
        if (role_ok(r))
          for (int P : Ps) out.push_back(a.head_input_position(L, H, r, P));
  std::sort(out.begin(), out.end());
  return out;
}

// A glob matches aL.headH.R.posP part by part: `*` and `?` never match the dots between them.
std::vector<int> glob_head_input_positions(const std::string& glob, const PathAlphabet& a, int layers, int heads) {
  std::vector<std::string> part(1);
  for (char c : glob) {
    if (c == '.')
      part.emplace_back();
    else
      part.back().push_back(c);
  }
  if (part.size() != 4) return {};
  // The word and its number: not `"a" + std::to_string(L)`, on which GCC 12 warns falsely (-Wrestrict).
  auto matches = [](const std::string& p, const char* word, int number) {
    return glob_match(p.c_str(), std::string(word).append(std::to_string(number)).c_str());
  };
  return head_input_positions(
      a, layers, heads, [&](int L) { return matches(part[0], "a", L); },
      [&](int H) { return matches(part[1], "head", H); },
      [&](Role r) { return glob_match(part[2].c_str(), role_name(r)); },
      [&](int P) { return matches(part[3], "pos", P); });
}

std::vector<int> set_head_input_positions(const NameSet& set, const PathAlphabet& a, int layers, int heads) {
  const PathName& n = set.like;
  if (n.kind != PathName::HeadInputPosition) return {};
  return head_input_positions(
      a, layers, heads, [&](int L) { return set.any_layer || L == n.layer; },
      [&](int H) { return set.any_head || H == n.head; }, [&](Role r) { return r == n.role; },
      [&](int P) { return set.any_pos || P == n.pos; });
}

struct NfaState {
  std::vector<int> eps;
  int atom = -1;  // index into atoms, kAny, or -1 (no labelled edge)
  int next = -1;
  int accept = -1;  // rule index accepted here
};

struct Fragment {
  int start, end;
};

// Pattern values -> NFA fragments over the alphabet's names.
class Builder {
 public:
  Builder(const Graph& g, const PathAlphabet& alphabet, std::vector<Atom>& atoms, std::vector<NfaState>& nfa)
      : layers_(g.n_layers()), heads_(g.n_heads()), alphabet_(alphabet), atoms_(atoms), nfa_(nfa) {}

  Fragment build(const Pattern& rule) {
    rule_ = &rule;
    return fragment(rule);
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
  Fragment fragment(const Pattern& p) {
    const Pattern::Node& n = p.node();
    switch (n.kind) {
      case Pattern::Node::Any: return any_sequence();
      case Pattern::Node::Glob:
        return atom(n.glob, [&](const PathEntry& e) { return glob_match(n.glob.c_str(), e.text.c_str()); },
                    glob_head_input_positions(n.glob, alphabet_, layers_, heads_));
      case Pattern::Node::Set:
        return atom(n.set.str(), [&](const PathEntry& e) { return n.set.contains(e.name); },
                    set_head_input_positions(n.set, alphabet_, layers_, heads_));
      case Pattern::Node::Sequence: {
        int s = state();
        Fragment f{s, s};
        for (const Pattern& part : n.parts) f = concat(f, fragment(part));
        return f;
      }
      case Pattern::Node::Either: {
        int s = state(), e = state();
        for (const Pattern& alt : n.parts) {
          Fragment f = fragment(alt);
          nfa_[s].eps.push_back(f.start);
          nfa_[f.end].eps.push_back(e);
        }
        return {s, e};
      }
      case Pattern::Node::Repeat: {
        Fragment g = fragment(n.parts[0]);
        int s = state(), e = state();
        nfa_[s].eps.push_back(g.start);
        if (n.op != '+') nfa_[s].eps.push_back(e);
        nfa_[g.end].eps.push_back(e);
        if (n.op != '?') nfa_[g.end].eps.push_back(g.start);
        return {s, e};
      }
    }
    PP_CHECK(false, "unknown pattern node");
    return {};
  }

  template <class Member>
  Fragment atom(const std::string& what, Member&& member, std::vector<int> head_positions) {
    const std::vector<PathEntry>& names = alphabet_.entries();
    head_position_members_ += head_positions.size();
    if (head_position_members_ > kMaxHeadPositionMembers)
      throw RuleError("path rule '" + rule_->str() + "': the rules name more than " +
                      std::to_string(kMaxHeadPositionMembers) +
                      " positions of heads' inputs in all; name fewer heads or positions (e.g. a2.head0.q.pos14 in "
                      "place of a*.head*.*.pos*)");
    Atom members{std::vector<bool>(names.size()), std::move(head_positions)};
    for (size_t i = 0; i < names.size(); ++i) members.interned[i] = member(names[i]);
    if (members.empty()) {
      std::vector<std::string> texts;
      for (const PathEntry& e : names) texts.push_back(e.text);
      throw RuleError("path rule '" + rule_->str() + "': '" + what + "' matches no path name of this model" +
                      did_you_mean(what, texts));
    }
    atoms_.push_back(std::move(members));
    int s = state(), e = state();
    nfa_[s].atom = static_cast<int>(atoms_.size() - 1);
    nfa_[s].next = e;
    return {s, e};
  }

  int layers_, heads_;
  uint64_t head_position_members_ = 0;
  const PathAlphabet& alphabet_;
  std::vector<Atom>& atoms_;
  std::vector<NfaState>& nfa_;
  const Pattern* rule_ = nullptr;
};

}  // namespace

// ---- The compiled automaton ----------------------------------------------------------------

struct CompiledRules::Impl {
  const Graph* graph = nullptr;
  PathAlphabet alphabet;                          // symbols: its numbers
  std::vector<int> klass;                         // interned symbol -> class (symbols no atom tells apart)
  std::unordered_map<int, int> head_position_klass;  // head input positions some atom names -> class
  int head_position_class = 0;                    // the class of every other head input position
  std::vector<bool> named_inputs;                 // [L][H][q, k, v]: some position in head_position_klass
  int classes = 0;
  std::vector<std::vector<int>> delta;            // minimised DFA: [state][class]
  std::vector<int> out;                           // input read by paths ending in a state
  int start = 0;

  Impl(const Graph& g, int64_t seq) : graph(&g), alphabet(g, seq) {}
  int class_of(int sym) const {
    if (alphabet.interned(sym)) return klass[sym];
    auto it = head_position_klass.find(sym);
    return it == head_position_klass.end() ? head_position_class : it->second;
  }
  int step(int s, int sym) const { return delta[s][class_of(sym)]; }
  int step_node(int s, NodeId n) const { return step(s, alphabet.node(n)); }

  // Where the paths entering a sub-layer continue, from state u (after "aL aL.head" or
  // "fL fL.head"): per position when the rules tell positions apart; otherwise, for attention, per
  // head and input (q, k, v) after their names, and per position of one head's input where the
  // rules tell those apart; for an MLP, at u itself.
  struct SubPlan {
    std::vector<int> pos;                                   // [T], empty where positions do not split
    std::vector<std::array<int, 3>> head;                   // [H][q, k, v]
    std::vector<std::array<std::vector<int>, 3>> head_pos;  // [H][q, k, v][T], empty where not split
    int u = 0;
    bool heads_split(int s) const;  // whether some head's input continues elsewhere than s
  };
  SubPlan plan(NodeId sub, int u) const;
  // The states after each position's name symbol(P) from state s; empty if all are alike (the
  // rules do not tell those positions apart, and paths name none of them).
  template <class Symbol>
  std::vector<int> distinct_rows(int s, Symbol symbol) const {
    std::vector<int> states;
    bool differ = false;
    for (int64_t P = 0; P < alphabet.seq(); ++P) {
      states.push_back(step(s, symbol(P)));
      differ |= states.back() != states[0];
    }
    return differ ? states : std::vector<int>{};
  }
  // distinct_rows of one head's input from state r (skipped where no rule names its positions).
  std::vector<int> input_positions(int layer, int head, Role role, int r) const;
  std::vector<int> final_positions(int t) const {  // ... of ln_final's input from state t
    return distinct_rows(t, [&](int64_t P) { return alphabet.final_position(P); });
  }
  // Fills delta, out and start from a DFA over the classes, merging equivalent states.
  void minimise(const std::vector<std::vector<int>>& dfa_delta, const std::vector<int>& dfa_out, int first);
  // The lambda form: whether a nano-style walk must split here to see the same states.
  bool residual_splits(NodeId residual, int s) const;
};

CompiledRules::Impl::SubPlan CompiledRules::Impl::plan(NodeId id, int u) const {
  const Node& sub = graph->node(id);
  SubPlan p;
  p.u = u;
  p.pos = distinct_rows(u, [&](int64_t P) { return alphabet.position(id, P); });
  if (sub.name().block != Block::Attn) return p;
  bool heads_differ = false;
  const int L = sub.layer();
  for (int H = 0; H < graph->n_heads(); ++H) {
    int h = step(u, alphabet.head(L, H));
    p.head.emplace_back();
    p.head_pos.emplace_back();
    for (Role role : {Role::Q, Role::K, Role::V}) {
      const int r = static_cast<int>(role);
      p.head.back()[r] = step(h, alphabet.head_input(L, H, role));
      p.head_pos.back()[r] = input_positions(L, H, role, p.head.back()[r]);
      heads_differ |= p.head.back()[r] != p.head[0][0] || !p.head_pos.back()[r].empty();
    }
  }
  if (heads_differ && !p.pos.empty())
    throw RuleError("the rules tell apart both the heads and the positions of " + sub.text() +
                    "; a sub-layer splits by one or the other");
  return p;
}

std::vector<int> CompiledRules::Impl::input_positions(int layer, int head, Role role, int r) const {
  if (!named_inputs[(int64_t{layer} * graph->n_heads() + head) * 3 + static_cast<int>(role)]) return {};
  return distinct_rows(r, [&](int64_t P) { return alphabet.head_input_position(layer, head, role, P); });
}

bool CompiledRules::Impl::SubPlan::heads_split(int s) const {
  for (size_t H = 0; H < head.size(); ++H)
    for (int r = 0; r < 3; ++r)
      if (head[H][r] != s || !head_pos[H][r].empty()) return true;
  return false;
}

bool CompiledRules::Impl::residual_splits(NodeId residual, int s) const {
  const Node& x = graph->node(residual);
  const NodeId sub = x.inputs[1];
  int t = step_node(s, residual);
  SubPlan p = plan(sub, step_node(t, sub));
  if (t != s) return true;
  if (!p.pos.empty()) return true;
  if (graph->node(sub).name().block != Block::Attn) return p.u != s;
  return p.heads_split(s);
}

CompiledRules::CompiledRules(const Model& model, int64_t seq, const PathRules& rules)
    : impl_(std::make_unique<Impl>(model.graph(), seq)) {
  Impl& m = *impl_;
  const std::vector<PathEntry>& alphabet = m.alphabet.entries();

  // NFA: start --eps--> (... pattern ... accept_i) for each rule i.
  std::vector<NfaState> nfa;
  std::vector<Atom> atoms;
  Builder b(model.graph(), m.alphabet, atoms, nfa);
  int start = b.state();
  for (size_t i = 0; i < rules.rules().size(); ++i) {
    Fragment f = b.build(rules.rules()[i].pattern);
    f = b.concat(b.concat(b.any_sequence(), f), b.any_sequence());
    nfa[start].eps.push_back(f.start);
    nfa[f.end].accept = static_cast<int>(i);
  }

  // Alphabet classes: symbols that every atom treats alike. The heads' inputs' positions no atom
  // names are one class (all-false), found without visiting them.
  std::map<std::vector<bool>, int> signature;
  std::vector<std::vector<bool>> class_members;  // [class][atom]
  auto class_of = [&](std::vector<bool> sig) {
    auto [it, inserted] = signature.emplace(sig, static_cast<int>(signature.size()));
    if (inserted) class_members.push_back(std::move(sig));
    return it->second;
  };
  for (size_t s = 0; s < alphabet.size(); ++s) {
    std::vector<bool> sig;
    for (const Atom& a : atoms) sig.push_back(a.interned[s]);
    m.klass.push_back(class_of(std::move(sig)));
  }
  std::vector<std::pair<int, int>> named;  // (head input position, atom naming it)
  for (size_t a = 0; a < atoms.size(); ++a)
    for (int sym : atoms[a].head_positions) named.emplace_back(sym, static_cast<int>(a));
  std::sort(named.begin(), named.end());
  m.head_position_class = class_of(std::vector<bool>(atoms.size()));
  m.named_inputs.assign(size_t(model.config().n_layers) * model.config().n_heads * 3, false);
  for (size_t i = 0; i < named.size();) {
    const int sym = named[i].first;
    std::vector<bool> sig(atoms.size());
    for (; i < named.size() && named[i].first == sym; ++i) sig[named[i].second] = true;
    m.head_position_klass[sym] = class_of(std::move(sig));
    const PathName n = m.alphabet.name(sym);
    m.named_inputs[(int64_t{n.layer} * model.config().n_heads + n.head) * 3 + static_cast<int>(n.role)] = true;
  }
  m.classes = static_cast<int>(signature.size());

  // Subset construction. Its work grows with the product of the rules' length and the number of
  // automaton states, which patterns of many wildcards (`* * * ...`) make large: it is bounded, and
  // rules past the bound are refused rather than compiled for minutes.
  uint64_t work = 0;
  auto charge = [&](uint64_t steps) {
    work += steps;
    if (work > kMaxCompileSteps)
      throw RuleError("the path rules are too large to compile (more than " + std::to_string(kMaxCompileSteps) +
                      " steps of the automaton construction); use fewer or more specific names, or `...` in place "
                      "of runs of `*`");
  };
  auto closure = [&](std::set<int> states) {
    std::vector<int> stack(states.begin(), states.end());
    while (!stack.empty()) {
      int q = stack.back();
      stack.pop_back();
      charge(1 + nfa[q].eps.size());
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
      charge(dfa_sets[d].size());
      for (int q : dfa_sets[d]) {
        const NfaState& n = nfa[q];
        if (n.atom == kAny || (n.atom >= 0 && class_members[c][n.atom])) next.insert(n.next);
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

  m.minimise(dfa_delta, dfa_out, 0);
}

CompiledRules::CompiledRules(const Model& model, int64_t seq, const Automaton& a)
    : impl_(std::make_unique<Impl>(model.graph(), seq)) {
  Impl& m = *impl_;
  const int interned = static_cast<int>(m.alphabet.entries().size());
  m.klass.resize(interned);
  std::iota(m.klass.begin(), m.klass.end(), 0);
  // The heads' inputs' positions are not the automaton's symbols: one more class, leaving every
  // state where it is, so that no path is split by them.
  m.head_position_class = interned;
  m.named_inputs.assign(size_t(model.config().n_layers) * model.config().n_heads * 3, false);
  m.classes = interned + 1;
  const int n = static_cast<int>(a.delta.size());
  PP_CHECK(n > 0 && static_cast<int>(a.out.size()) == n && a.start >= 0 && a.start < n, "an automaton without states");
  std::vector<std::vector<int>> delta = a.delta;
  for (int d = 0; d < n; ++d) {
    PP_CHECK(static_cast<int>(delta[d].size()) == interned, "an automaton row per interned symbol of the alphabet");
    for (int t : delta[d]) PP_CHECK(t >= 0 && t < n, "an automaton transition to no state");
    delta[d].push_back(d);
  }
  m.minimise(delta, a.out, a.start);
}

// Moore minimisation: states are equivalent when every continuation reads the same input.
void CompiledRules::Impl::minimise(const std::vector<std::vector<int>>& dfa_delta, const std::vector<int>& dfa_out,
                                   int first) {
  Impl& m = *this;
  const int n = static_cast<int>(dfa_delta.size());
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
  m.start = block[first];
}

CompiledRules::~CompiledRules() = default;
CompiledRules::CompiledRules(CompiledRules&&) noexcept = default;

int CompiledRules::start() const { return impl_->start; }
const PathAlphabet& CompiledRules::alphabet() const { return impl_->alphabet; }
int CompiledRules::step(int state, std::string_view name) const {
  const std::optional<PathName> parsed = PathName::parse(name);
  const int sym = parsed ? impl_->alphabet.find(*parsed) : -1;
  return sym < 0 ? -1 : impl_->step(state, sym);
}
int CompiledRules::outcome(int state) const { return impl_->out[state]; }
size_t CompiledRules::states() const { return impl_->delta.size(); }

namespace {

// The state after the first `count` names of a path (names the model's paths hold).
int run_word(const CompiledRules& c, const Path& p, size_t count) {
  int s = c.start();
  for (size_t i = 0; i < count; ++i) s = c.step(s, p[i]);
  return s;
}

}  // namespace

WhichFn CompiledRules::which() const {
  return [this](const Path& p) { return outcome(run_word(*this, p, p.size())); };
}

BranchFn CompiledRules::branch() const {
  return [this](const Path& p) {
    const Impl& m = *impl_;
    const PathName& last = p.last();
    const NodeId node = m.graph->node_of(last);
    if (last.kind == PathName::Residual)
      return m.residual_splits(node, run_word(*this, p, p.size() - 1)) ? Split::Edges : Split::None;
    int s = run_word(*this, p, p.size());
    if (last.kind == PathName::Sublayer) {
      Impl::SubPlan plan = m.plan(node, s);
      if (!plan.pos.empty()) return Split::Positions;
      return plan.heads_split(s) ? Split::Edges : Split::None;
    }
    if (last.kind == PathName::Final) return m.final_positions(s).empty() ? Split::None : Split::Positions;
    // aL.headH.q|k|v: split its positions when their names lead to different states.
    if (last.kind == PathName::HeadInput)
      return m.input_positions(last.layer, last.head, last.role, s).empty() ? Split::None : Split::Positions;
    // aL.headH: split its q, k and v when their names lead elsewhere than the head's own.
    PP_CHECK(last.kind == PathName::Head, "branch() is asked at nodes, heads and head inputs only");
    for (Role r : {Role::Q, Role::K, Role::V}) {
      const int t = m.step(s, m.alphabet.head_input(last.layer, last.head, r));
      if (t != s || !m.input_positions(last.layer, last.head, r, t).empty()) return Split::Edges;
    }
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
    switch (n.name().kind) {
      case PathName::Final: {
        const int t = m_.step_node(s, id);
        out = t_.final(input_of(id, t, m_.final_positions(t)));
        break;
      }
      case PathName::Emb:
        out = t_.embed(m_.out[m_.step_node(s, id)]);
        break;
      case PathName::Residual: {
        // Always evaluated split: when both edges continue alike, the tracer's canonical forms
        // make this the very expression of the unsplit node.
        const NodeId sub = n.inputs[1];
        int u = m_.step_node(m_.step_node(s, id), sub);
        out = t_.residual(id, value(n.inputs[0], s), sublayer(sub, u));
        break;
      }
      default:
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
    CompiledRules::Impl::SubPlan plan = m_.plan(id, u);
    if (!plan.pos.empty()) return t_.sublayer_on(id, input_of(id, u, plan.pos));
    if (sub.name().block != Block::Attn) return t_.mlp(sub.layer(), value(input, u));
    std::vector<ExprId> qkv;
    for (size_t H = 0; H < plan.head.size(); ++H)
      for (int r = 0; r < 3; ++r) qkv.push_back(input_of(id, plan.head[H][r], plan.head_pos[H][r]));
    return t_.attention_heads(sub.layer(), qkv);
  }

  // The input of `node` (ln_final or a sub-layer): from state s, or position P's row from
  // rows[P] where the rules tell positions apart (rows not empty).
  ExprId input_of(NodeId node, int s, const std::vector<int>& rows) {
    const NodeId input = g_.node(node).inputs[0];
    if (rows.empty()) return value(input, s);
    std::vector<ExprId> parts;
    for (int state : rows) parts.push_back(value(input, state));
    return t_.rows(node, parts);
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

Result run(const Model& model, const std::vector<Batch>& inputs, const CompiledRules& rules, const RunOptions& options) {
  check_inputs(model, inputs);
  PP_CHECK(rules.alphabet().seq() == inputs[0].seq, "an automaton compiled for another sequence length");
  for (size_t s = 0; s < rules.states(); ++s)
    if (rules.outcome(static_cast<int>(s)) >= static_cast<int>(inputs.size()))
      throw RuleError("the automaton reads input " + std::to_string(rules.outcome(static_cast<int>(s))) + " of " +
                      std::to_string(inputs.size()));
  return detail::run_traced(model, inputs, options,
                            [&](Tracer& tracer, uint64_t& visits) { return rules.trace(tracer, &visits); });
}

Result run(const Model& model, const std::vector<Batch>& inputs, const PathRules& rules, const RunOptions& options) {
  check_inputs(model, inputs);
  rules.check_inputs(inputs.size());
  CompiledRules compiled(model, inputs[0].seq, rules);
  std::vector<std::string> warnings;
  Result r = detail::run_traced(model, inputs, options, [&](Tracer& tracer, uint64_t& visits) {
    const ExprId root = compiled.trace(tracer, &visits);
    // A rule changes nothing when the experiment without it has the same provenance (expressions
    // are hash-consed, so the same computation has the same id). Rules found so are left out of the
    // later checks, so that of two copies of a rule only one is named, and leaving out every rule
    // named changes nothing either. Tracing computes nothing; up to 32 rules are checked.
    const std::vector<PathRule>& all = rules.rules();
    std::vector<bool> kept(all.size(), true);
    for (size_t i = 0; i < all.size() && all.size() <= 32; ++i) {
      PathRules without;
      for (size_t j = 0; j < all.size(); ++j)
        if (j != i && kept[j]) without.add(all[j].pattern, all[j].input);
      without.otherwise(rules.default_input());
      if (CompiledRules(model, inputs[0].seq, without).trace(tracer) != root) continue;
      kept[i] = false;
      warnings.push_back("the rule '" + all[i].pattern.str() + " => " + std::to_string(all[i].input) +
                         "' changes nothing: no path it decides reads another input than it would without it");
    }
    return root;
  });
  r.warnings = std::move(warnings);
  return r;
}

}  // namespace pathpatch
