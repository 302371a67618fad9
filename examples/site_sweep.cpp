// nnpatch's automated activation patching: patch clean values into the corrupted run at every site
// (residual stream, attention and MLP outputs, each head's z) of every layer and position, and
// score each patched run with the normalised logit difference (1 = clean behaviour restored).
#include <cstdio>

#include <pathpatch/pathpatch.hpp>
#include <viz/heatmap.hpp>

namespace pp = pathpatch;

const char* kPrompt = "When Mary and John went to the store, John gave a drink to";
const char* kCorrupt = "When Mary and John went to the store, Anna gave a drink to";

int main(int argc, char** argv) {
  pp::Model model = pp::load_model(argc > 1 ? argv[1] : PP_ZOO "/ioi-llama");
  pp::Batch clean = model.encode({kPrompt});
  pp::Batch corrupt = model.encode({kCorrupt});
  const pp::Tokenizer& tok = *model.tokenizer();
  pp::Metric metric = pp::Metric::normalized_logit_diff({pp::next_token(tok, kPrompt, " Mary")}, {pp::next_token(tok, kPrompt, " John")});

  pp::Sites sites;
  sites.names = {"resid_pre", "attn_out", "mlp_out", "z"};
  sites.positions = pp::SitePositions::Each;
  auto results = pp::activation_patching(model, clean, corrupt, sites, metric);

  pp::viz::HeatmapOptions ho;
  for (int64_t t = 0; t < clean.seq; ++t) ho.position_labels.push_back(tok.piece(clean.id(0, t)));
  for (const auto& [site, sweep] : results) {
    // The strongest cell of each site.
    int64_t best = 0;
    for (int64_t i = 1; i < sweep.values.numel(); ++i)
      if (sweep.values.data()[i] > sweep.values.data()[best]) best = i;
    std::printf("%-10s axes %-24s strongest %.3f (flat index %lld)\n", site.c_str(),
                (sweep.axes[0] + "," + sweep.axes[1] + (sweep.axes.size() > 2 ? "," + sweep.axes[2] : "")).c_str(),
                sweep.values.data()[best], (long long)best);
    if (sweep.values.dim() == 2) pp::viz::write_sweep(sweep, "site_sweep_" + site + ".svg", ho);
  }
  std::printf("wrote site_sweep_{resid_pre,attn_out,mlp_out}.svg\n");
}
