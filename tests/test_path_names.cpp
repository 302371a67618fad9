// Path names as values: printed and parsed in one place (graph/path.cpp), the alphabet paths are made
// of, and rule patterns built from typed parts printing as the text they stand for.
#include <catch2/catch.hpp>

#include "helpers.hpp"
#include "pathpatch/rules.hpp"

namespace pp = pathpatch;

TEST_CASE("every path name of a model prints and parses back to itself", "[path]") {
  for (const char* model : {"gpt2", "gpt2-attn-only", "llama-gqa"}) {
    const pp::Model& m = pptest::model(model);
    pp::PathAlphabet names(m.graph(), 7);
    size_t heads = 0, positions = 0;
    for (const pp::PathEntry& e : names.entries()) {
      INFO(model << ": " << e.text);
      CHECK(e.name.str() == e.text);
      auto parsed = pp::PathName::parse(e.text);
      REQUIRE(parsed.has_value());
      CHECK(*parsed == e.name);
      heads += e.name.kind == pp::PathName::Head;
      positions += e.name.kind == pp::PathName::Position;
    }
    const pp::Graph& g = m.graph();
    CHECK(heads == static_cast<size_t>(g.n_layers() * g.n_heads()));
    CHECK(positions == 7u * g.n_layers() * (g.has_mlp() ? 2 : 1));
    // Nodes come first, in node order, and the index functions find every edge name.
    for (pp::NodeId n = 0; n < static_cast<pp::NodeId>(g.nodes().size()); ++n)
      CHECK(names.at(names.node(n)).text == g.node(n).text());
    CHECK(names.at(names.head_input(1, 2, pp::Role::K)).text == "a1.head2.k");
    CHECK(names.at(names.position(g.attention(1), 6)).text == "a1.head.pos6");
  }
}

TEST_CASE("text that is no path name does not parse", "[path]") {
  for (const char* bad : {"", "a", "a1.", "a01", "a1.head01", "f1.head2", "a1.head2.x", "a1.head2.qk", "a1.heads",
                          "b1", "a-1", "a1.head.pos", "a1.head.pos-3", "ln_finals", "emb0", "a1234567890"}) {
    INFO(bad);
    CHECK_FALSE(pp::PathName::parse(bad).has_value());
  }
  CHECK(pp::PathName::parse("f3.head.pos12") == pp::PathName::position(pp::Block::Mlp, 3, 12));
  CHECK(pp::PathName::parse("a0.head3.v") == pp::PathName::head_input(0, 3, pp::Role::V));
}

TEST_CASE("name sets and typed patterns print as the rule text they stand for", "[path][rules]") {
  using pp::Block;
  using pp::PathName;
  CHECK(pp::NameSet::every_layer(PathName::residual(Block::Mlp, 0)).str() == "f*");
  CHECK(pp::NameSet::every_layer(PathName::sublayer(Block::Mlp, 0)).str() == "f*.head");
  pp::NameSet keys{PathName::head_input(0, 0, pp::Role::K), true, true};
  CHECK(keys.str() == "a*.head*.k");
  CHECK(keys.contains(PathName::head_input(5, 3, pp::Role::K)));
  CHECK_FALSE(keys.contains(PathName::head_input(5, 3, pp::Role::Q)));

  const pp::Model& m = pptest::model("gpt2");
  pp::PathRules direct = pp::path_patching_rules(m, {{0, 3}}, {pp::Receiver::logits()}, false);
  CHECK(direct.str() == "ln_final a0 a0.head a0.head3 => 1\notherwise => 0\n");
  pp::PathRules via_mlps = pp::path_patching_rules(m, {{0, 3}}, {{pp::Receiver::K, 1, 2}}, true);
  CHECK(via_mlps.str() == "a1 a1.head a1.head2 a1.head2.k (f* f*.head)* a0 a0.head a0.head3 => 1\notherwise => 0\n");
  // Text and typed forms compile to automata that trace the same experiment.
  pp::Batch clean = pp::Batch::from_rows({{3, 14, 15, 92, 65, 35, 89}});
  pp::Batch corrupt = pp::Batch::from_rows({{3, 14, 15, 92, 11, 35, 89}});
  pp::RunOptions opt;
  opt.cache = std::make_shared<pp::Cache>();
  pp::Result typed = pp::run(m, {clean, corrupt}, via_mlps, opt);
  pp::Result text = pp::run(m, {clean, corrupt},
                            pp::PathRules().add("a1 a1.head a1.head2 a1.head2.k (f* f*.head)* a0 a0.head a0.head3", 1), opt);
  CHECK(typed.root == text.root);
  // A pattern's text parses back to the same pattern.
  for (const char* t : {"ln_final (f* f*.head)* a3 a3.head a3.head5", "(a1 | f1)+ ... emb", "(a0.head2.q)? a0"})
    CHECK(pp::Pattern::parse(pp::Pattern::parse(t).str()).str() == pp::Pattern::parse(t).str());
}
