// The path-patching engine: nano-path-patching's semantics (its test/test_gpt2.py cases, ported).
#include <catch2/catch.hpp>

#include "helpers.hpp"

namespace pp = pathpatch;

namespace {

pp::Batch clean() { return pp::Batch::from_rows({{3, 14, 15, 92, 65, 35, 89}}); }
pp::Batch corrupt() { return pp::Batch::from_rows({{3, 14, 15, 92, 11, 35, 89}}); }

}  // namespace

TEST_CASE("constant which with no split equals the plain forward bit for bit", "[engine]") {
  for (const char* name : {"gpt2", "llama-gqa"}) {
    const pp::Model& m = pptest::model(name);
    pp::Result plain = pp::forward(m, corrupt());
    pp::Result r = pp::run(m, {clean(), corrupt()}, [](const pp::Path&) { return 1; }, pptest::no_split);
    CHECK(pp::bit_equal(r.hidden, plain.hidden));
  }
}
