#pragma once
// One exception hierarchy for everything pathpatch refuses. Every message says what was wrong and
// where (file, tensor, key, node or path) and, where it can, what was expected instead.
#include <stdexcept>
#include <string>

namespace pathpatch {

// Base of every error pathpatch throws on bad input. Catch this to handle them all.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct IoError : Error { using Error::Error; };          // file missing or unreadable
struct FormatError : Error { using Error::Error; };      // a file's contents are malformed
struct ConfigError : Error { using Error::Error; };      // config.json key missing or invalid
struct WeightError : Error { using Error::Error; };      // tensor missing, wrong shape, NaN/Inf
struct InputError : Error { using Error::Error; };       // token ids, batch shapes, inputs that differ
struct NameError : Error { using Error::Error; };        // unknown node, activation or site name
struct PredicateError : Error { using Error::Error; };   // which/branch returned something invalid
struct BudgetError : Error { using Error::Error; };      // path or memory budget exceeded
struct RuleError : Error { using Error::Error; };        // a path rule does not parse or compile
struct TokenizerError : Error { using Error::Error; };   // tokenizer files or text it cannot handle
struct RenderError : Error { using Error::Error; };      // Graphviz layout or output failed

// A broken invariant inside pathpatch itself: a bug, never the user's input.
struct InternalError : std::logic_error {
  using std::logic_error::logic_error;
};

namespace detail {
[[noreturn]] void fail_check(const char* cond, const char* file, int line, const std::string& msg);
}

}  // namespace pathpatch

// Always-on assertion for invariants (kept in release builds: a wrong answer is worse than a throw).
#define PP_CHECK(cond, msg)                                                     \
  do {                                                                          \
    if (!(cond)) ::pathpatch::detail::fail_check(#cond, __FILE__, __LINE__, msg); \
  } while (0)
