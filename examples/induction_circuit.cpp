// The zoo induction model's circuit, found by gradients and checked by patching: EAP-IG scores all
// 81 edges of its graph at once (five forwards and backwards), the best edges become a circuit, and
// path patching runs the model with every other edge corrupted, on prompts the scores never saw.
#include <algorithm>
#include <cstdio>

#include <pathpatch/analysis.hpp>
#include <pathpatch/pathpatch.hpp>
#include <viz/diagrams.hpp>

namespace pp = pathpatch;

struct Task {
  pp::Batch clean, corrupted;
  pp::Metric loss;  // cross-entropy on the repeated half: low when the copy is predicted
};

// [BOS] s s for 20 random tokens s; the corrupted copy changes the first s, so there is nothing
// to copy.
Task task(uint64_t seed) {
  pp::RepeatedTokens r = pp::repeated_tokens(8, 20, 10000, 30000, seed, /*bos=*/50256);
  std::vector<int> scored;
  for (int64_t t = r.first_repeat(); t < r.batch.seq - 1; ++t) scored.push_back(static_cast<int>(t));
  return {r.batch, pp::unrepeated_tokens(r, 10000, 30000, seed + 100), pp::Metric::cross_entropy(scored)};
}

int main(int argc, char** argv) {
  pp::Model model = pp::load_model(argc > 1 ? argv[1] : PP_ZOO "/induction-gpt2");
  const Task fit = task(1), held_out = task(7);

  pp::EdgeGraph graph = pp::edge_attribution(model, fit.clean, fit.corrupted, fit.loss);  // EAP-IG, m = 5
  std::printf("EAP-IG scores of %lld edges; the best (loss rises when the edge is corrupted):\n",
              static_cast<long long>(graph.n_edges()));
  const auto ranked = graph.edges_by_score();
  const std::vector<std::pair<int, int>> best(ranked.begin(), ranked.begin() + 8);
  // ACDC's check, exactly: each of the best edges patched alone.
  const std::vector<float> exact = pp::exact_edge_scores(model, fit.clean, fit.corrupted, graph, best, fit.loss);
  for (size_t i = 0; i < best.size(); ++i)
    std::printf("  %-18s score %+.4f   exact change %+.3f\n", graph.edge_name(best[i].first, best[i].second).c_str(),
                graph.score(best[i].first, best[i].second), exact[i]);

  std::vector<std::pair<int, int>> smaller;  // the edges of the first circuit
  for (int n : {10, 18}) {
    graph.select_top(n);
    const pp::Faithfulness f = pp::faithfulness(model, held_out.clean, held_out.corrupted, graph, held_out.loss);
    std::printf("top %d edges -> a circuit of %lld edges, %lld nodes: loss %.2f (clean %.2f, corrupted %.2f), "
                "faithfulness %.2f on new prompts\n",
                n, static_cast<long long>(f.edges), static_cast<long long>(f.nodes), f.circuit, f.clean, f.corrupted,
                f.faithfulness);
    std::vector<std::string> added;
    for (const auto& [s, d] : graph.edges_by_score())
      if (graph.in_circuit(s, d) && std::find(smaller.begin(), smaller.end(), std::make_pair(s, d)) == smaller.end())
        added.push_back(graph.edge_name(s, d));
    if (!smaller.empty()) {
      std::printf("  it adds:");
      for (const std::string& e : added) std::printf(" %s", e.c_str());
      std::printf("\n");
    }
    smaller.clear();
    for (const auto& [s, d] : graph.edges_by_score())
      if (graph.in_circuit(s, d)) smaller.emplace_back(s, d);
  }
  pp::viz::CircuitOptions o;
  o.metric = fit.loss.name();
  pp::viz::circuit_graph(graph, "EAP-IG (5 steps), top 18", o).render_file("induction_circuit.svg");
  std::printf("wrote induction_circuit.svg\n");
}
