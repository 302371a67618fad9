#include "graph/path.hpp"

#include <charconv>

namespace pathpatch {

const char* split_name(Split s) {
  switch (s) {
    case Split::None: return "None";
    case Split::Edges: return "Edges";
    case Split::Positions: return "Positions";
  }
  return "?";
}

const char* role_name(Role r) {
  switch (r) {
    case Role::Q: return "q";
    case Role::K: return "k";
    case Role::V: return "v";
  }
  return "?";
}

std::string PathName::str_with_layer(std::string_view L) const {
  const std::string b(1, block == Block::Attn ? 'a' : 'f');
  const std::string layer_text(L);
  switch (kind) {
    case Emb: return "emb";
    case Final: return "ln_final";
    case FinalPosition: return std::string("ln_final.pos").append(std::to_string(pos));
    case Residual: return b + layer_text;
    case Sublayer: return b + layer_text + ".head";
    case Head: return "a" + layer_text + ".head" + std::to_string(head);
    case HeadInput: return "a" + layer_text + ".head" + std::to_string(head) + "." + role_name(role);
    case Position: return b + layer_text + ".head.pos" + std::to_string(pos);
    case HeadInputPosition:
      return "a" + layer_text + ".head" + std::to_string(head) + "." + role_name(role) + ".pos" + std::to_string(pos);
  }
  return "?";
}

std::string PathName::str() const { return str_with_layer(std::to_string(layer)); }

namespace {

// Reads a non-negative decimal number at the front of `s` (no sign, no leading zeros but "0").
bool take_number(std::string_view& s, int& out) {
  size_t n = 0;
  while (n < s.size() && s[n] >= '0' && s[n] <= '9') ++n;
  if (n == 0 || (n > 1 && s[0] == '0') || n > 9) return false;
  std::from_chars(s.data(), s.data() + n, out);
  s.remove_prefix(n);
  return true;
}

bool take(std::string_view& s, std::string_view word) {
  if (s.substr(0, word.size()) != word) return false;
  s.remove_prefix(word.size());
  return true;
}

}  // namespace

std::optional<PathName> PathName::parse(std::string_view s) {
  if (s == "emb") return emb();
  if (s == "ln_final") return ln_final();
  if (take(s, "ln_final.pos")) {
    int pos = 0;
    if (!take_number(s, pos) || !s.empty()) return std::nullopt;
    return final_position(pos);
  }
  if (s.empty() || (s[0] != 'a' && s[0] != 'f')) return std::nullopt;
  const Block b = s[0] == 'a' ? Block::Attn : Block::Mlp;
  s.remove_prefix(1);
  int layer = 0;
  if (!take_number(s, layer)) return std::nullopt;
  if (s.empty()) return residual(b, layer);
  if (!take(s, ".head")) return std::nullopt;
  if (s.empty()) return sublayer(b, layer);
  if (take(s, ".pos")) {
    int pos = 0;
    if (!take_number(s, pos) || !s.empty()) return std::nullopt;
    return position(b, layer, pos);
  }
  int head = 0;
  if (b != Block::Attn || !take_number(s, head)) return std::nullopt;
  if (s.empty()) return head_of(layer, head);
  for (Role r : {Role::Q, Role::K, Role::V}) {
    if (s.size() < 2 || s[0] != '.' || s[1] != role_name(r)[0]) continue;
    s.remove_prefix(2);
    if (s.empty()) return head_input(layer, head, r);
    int pos = 0;
    if (!take(s, ".pos") || !take_number(s, pos) || !s.empty()) return std::nullopt;
    return head_input_position(layer, head, r, pos);
  }
  return std::nullopt;
}

bool Path::contains(std::string_view name) const {
  for (const PathEntry* e : entries_)
    if (e->text == name) return true;
  return false;
}

bool Path::contains(const PathName& name) const {
  for (const PathEntry* e : entries_)
    if (e->name == name) return true;
  return false;
}

std::string Path::str() const {
  std::string s;
  for (size_t i = 0; i < entries_.size(); ++i) s += (i ? " > " : "") + entries_[i]->text;
  return s;
}

}  // namespace pathpatch
