// libFuzzer target: path-rule patterns compiled against the tiny GPT-2 of tests/golden/gpt2.
// Input: byte 0 picks the sequence length (1..8); the rest is up to 4 patterns, one per line, reading
// inputs 1, 0, 1, 0. RuleError is the documented refusal; any other exception or a crash is a finding.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "graph/error.hpp"
#include "models/model.hpp"
#include "pathpatch/rules.hpp"

namespace pp = pathpatch;

namespace {

const pp::Model& model() {
  static const pp::Model m = pp::load_model(PP_SOURCE_DIR "/tests/golden/gpt2");
  return m;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  model();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int64_t seq = 1 + data[0] % 8;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    pp::PathRules rules;  // patterns are parsed as they are added: RuleError there too
    size_t start = 0;
    for (int i = 0; i < 4 && start <= text.size(); ++i) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      rules.add(text.substr(start, end - start), i % 2 == 0 ? 1 : 0);
      start = end + 1;
    }
    rules.check_inputs(2);
    pp::CompiledRules compiled(model(), seq, rules);
    if (compiled.states() == 0) __builtin_trap();
    // Walk a few names from the start state: every state reached has an outcome among the inputs.
    int state = compiled.start();
    for (const char* name : {"ln_final", "a1", "a1.head", "a1.head2", "a1.head2.k", "f0", "f0.head", "a0",
                             "a0.head.pos3", "emb"}) {
      int next = compiled.step(state, name);
      if (next < 0) continue;
      if (static_cast<size_t>(next) >= compiled.states()) __builtin_trap();
      int out = compiled.outcome(next);
      if (out < 0 || out > 1) __builtin_trap();
      state = next;
    }
  } catch (const pp::RuleError&) {
  }
  return 0;
}
