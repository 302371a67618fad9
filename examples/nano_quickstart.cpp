// nano-path-patching's quick start, the pathpatch way: two prompts, and two predicates over paths.
// `branch` splits the computation at attention layer 1 (its residual and its attention get separate
// paths); `which` lets every path through layer 1's attention read the corrupted prompt.
#include <cstdio>

#include <pathpatch/pathpatch.hpp>
#include <viz/diagrams.hpp>

namespace pp = pathpatch;

const char* kPrompt = "When Mary and John went to the store, John gave a drink to";
const char* kCorrupt = "When Mary and John went to the store, Anna gave a drink to";

int main(int argc, char** argv) {
  pp::Model model = pp::load_model(argc > 1 ? argv[1] : PP_ZOO "/ioi-llama");
  pp::Batch clean = model.encode({kPrompt});
  pp::Batch corrupt = model.encode({kCorrupt});

  auto branch = [](const pp::Path& p) { return p.back() == "a1" ? pp::Split::Edges : pp::Split::None; };
  auto which = [](const pp::Path& p) { return p.contains("a1") ? 1 : 0; };
  pp::Result r = pp::run(model, {clean, corrupt}, which, branch);

  const pp::Tokenizer& tok = *model.tokenizer();
  const int32_t mary = pp::next_token(tok, kPrompt, " Mary"), john = pp::next_token(tok, kPrompt, " John");
  auto logit = [&](const pp::Tensor& logits, int32_t id) { return logits.at({0, logits.size(1) - 1, id}); };
  pp::Tensor plain = pp::forward(model, clean).logits;
  std::printf("logit( Mary) - logit( John): clean %.3f, with layer 1's attention reading the corrupted prompt %.3f\n",
              logit(plain, mary) - logit(plain, john), logit(r.logits, mary) - logit(r.logits, john));
  std::printf("%llu distinct steps, %llu computed, %llu node visits\n", (unsigned long long)r.stats.steps,
              (unsigned long long)r.stats.computed, (unsigned long long)r.stats.node_visits);

  pp::viz::render_provenance(r, model, "nano_quickstart.svg",
                             pp::viz::DiagramOptions::for_inputs({clean, corrupt}, {"clean", "corrupted"}));
  std::printf("wrote nano_quickstart.svg\n");
}
