// EAP-IG's graph, EAP / EAP-IG edge scores, circuit selection, exact faithfulness and per-edge
// scores (pathpatch/circuits.hpp).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "helpers.hpp"
#include "models/safetensors.hpp"
#include "pathpatch/analysis.hpp"
#include "pathpatch/circuits.hpp"
#include "pathpatch/prompts.hpp"

namespace pp = pathpatch;

namespace {

struct Inputs {
  pp::Batch clean, corrupted;
  std::vector<int32_t> answer, wrong;
};

// The gradient golden files' inputs (tools/make_gradient_golden.py): 3 rows with left padding.
Inputs golden_inputs(const std::string& name) {
  auto f = pp::SafetensorsFile::open(pptest::golden(name) / "gradients.safetensors");
  auto ids = [](const pp::Tensor& t) {
    std::vector<int32_t> out;
    for (int64_t i = 0; i < t.numel(); ++i) out.push_back(static_cast<int32_t>(t.data()[i]));
    return out;
  };
  pp::Tensor mask = f.load("attention_mask");
  return Inputs{pptest::batch_from(f.load("input_ids"), mask), pptest::batch_from(f.load("corrupted_ids"), mask),
                ids(f.load("answer")), ids(f.load("wrong"))};
}

}  // namespace

TEST_CASE("the edge graph is EAP-IG's: names, order, which sources feed which inputs", "[circuits]") {
  const pp::EdgeGraph g = pp::EdgeGraph::of(pptest::model("gpt2"));  // 2 layers, 4 heads
  REQUIRE(g.n_sources() == 1 + 2 * 5);
  REQUIRE(g.n_destinations() == 2 * 13 + 1);
  CHECK(g.source(0) == "input");
  CHECK(g.source(g.head_index(1, 2)) == "a1.h2");
  CHECK(g.source(g.mlp_index(0)) == "m0");
  CHECK(g.destination(g.head_input_index(1, 3, 1)) == "a1.h3<k>");
  CHECK(g.destination(g.logits_index()) == "logits");
  CHECK(g.edge_name(g.head_index(0, 1), g.head_input_index(1, 0, 2)) == "a0.h1->a1.h0<v>");
  // Layer 0's heads read only the input; m0 reads the input and layer 0's heads; logits read all.
  CHECK(g.first_after(g.head_input_index(0, 0, 0)) == 1);
  CHECK(g.first_after(g.mlp_input_index(0)) == 5);
  CHECK(g.first_after(g.logits_index()) == g.n_sources());
  // EAP-IG's count: (1 + 4 + 1) * 12 + (1 + 4) * 1 + ... summed per destination.
  int64_t expected = 0;
  for (int d = 0; d < g.n_destinations(); ++d) expected += g.first_after(d);
  CHECK(g.n_edges() == expected);
  CHECK(g.n_edges() == 1 * 12 + 5 * 1 + 6 * 12 + 10 * 1 + 11);
  CHECK(g.find_edge("m0->a1.h2<q>") == std::make_pair(g.mlp_index(0), g.head_input_index(1, 2, 0)));
  CHECK_THROWS_AS(g.find_edge("a1.h0->a0.h0<q>"), pp::NameError);  // backwards in time
  CHECK_THROWS_AS(g.find_edge("a0.h9->logits"), pp::NameError);

  // A parallel block's MLP does not read its own layer's heads; attention-only models have no MLPs.
  const pp::EdgeGraph neox = pp::EdgeGraph::of(pptest::model("pythia"));
  CHECK(neox.first_after(neox.mlp_input_index(1)) == neox.first_after(neox.head_input_index(1, 0, 0)));
  const pp::EdgeGraph attn = pp::EdgeGraph::of(pptest::model("gpt2-attn-only"));
  CHECK(attn.n_sources() == 1 + 2 * 4);
  CHECK(attn.n_destinations() == 2 * 12 + 1);
}

TEST_CASE("EAP and EAP-IG edge scores match a torch reference of EAP-IG's graph, every family", "[circuits][golden]") {
  // tools/make_gradient_golden.py: autograd through copies of the residual for each destination
  // (EAP-IG's split q/k/v inputs, ungrouped on GQA models), float64.
  for (const char* name : {"gpt2", "gpt2-untied", "llama-gqa", "llama-tied", "llama3", "llama-linear", "mistral",
                           "qwen2", "gemma2", "pythia", "neox-sequential", "gpt-neo"}) {
    const pp::Model& m = pptest::model(name);
    Inputs in = golden_inputs(name);
    auto f = pp::SafetensorsFile::open(pptest::golden(name) / "gradients.safetensors");
    const pp::EdgeGraph names = pp::EdgeGraph::of(m);
    const auto listed = nlohmann::json::parse(f.metadata().at("sources"));
    REQUIRE(listed.size() == static_cast<size_t>(names.n_sources()));
    for (int s = 0; s < names.n_sources(); ++s) CHECK(listed[s] == names.source(s));
    const auto dests = nlohmann::json::parse(f.metadata().at("destinations"));
    REQUIRE(dests.size() == static_cast<size_t>(names.n_destinations()));
    for (int d = 0; d < names.n_destinations(); ++d) CHECK(dests[d] == names.destination(d));
    for (const auto& [key, method, steps] : {std::make_tuple("eap", pp::EdgeMethod::Eap, 1),
                                             std::make_tuple("eap_ig3", pp::EdgeMethod::EapIgInputs, 3),
                                             std::make_tuple("eap_ig_act2", pp::EdgeMethod::EapIgActivations, 2)}) {
      pp::EdgeAttributionOptions o;
      o.method = method;
      o.steps = steps;
      const pp::EdgeGraph g = pp::edge_attribution(m, in.clean, in.corrupted, pp::Metric::logit_diff(in.answer, in.wrong), o);
      const pp::Tensor theirs = f.load(std::string(key) + "/scores");
      REQUIRE(theirs.shape() == g.scores().shape());
      float largest = 0;
      for (int64_t i = 0; i < theirs.numel(); ++i) largest = std::max(largest, std::fabs(theirs.data()[i]));
      const float diff = pptest::max_diff(g.scores(), theirs) / largest;
      INFO(name << " " << key << ": worst |diff| relative to the largest score " << diff);
      CHECK(diff <= 1e-4f);
      std::printf("edge scores %-16s %-8s worst relative |diff| %.1e (largest score %.4f)\n", name, key, diff, largest);
    }
  }
}

TEST_CASE("EAP with identical inputs scores every edge exactly zero", "[circuits]") {
  const pp::Model& m = pptest::model("llama-gqa");
  Inputs in = golden_inputs("llama-gqa");
  for (pp::EdgeMethod method : {pp::EdgeMethod::Eap, pp::EdgeMethod::EapIgInputs}) {
    pp::EdgeAttributionOptions o;
    o.method = method;
    const pp::EdgeGraph g = pp::edge_attribution(m, in.clean, in.clean, pp::Metric::logit_diff(in.answer, in.wrong), o);
    for (int64_t i = 0; i < g.scores().numel(); ++i) CHECK(g.scores().data()[i] == 0.0f);
  }
}

TEST_CASE("a source's outgoing EAP scores sum to its node score: the gradient of its output", "[circuits]") {
  // The output of a source enters each later input once, so d metric / d output is the sum of
  // the gradients at those inputs, and so are the scores (GQA's per-query-head k and v inputs, a
  // parallel block's MLP, an attention-only model, q/k/v biases). Not Gemma-2: its post-norm sits between the heads' results and the residual, so a head's output
  // does not enter the later inputs as itself (EAP-IG scores it by hook_result all the same).
  for (const char* name : {"gpt2", "llama-gqa", "pythia", "gpt2-attn-only", "qwen2"}) {
    const pp::Model& m = pptest::model(name);
    Inputs in = golden_inputs(name);
    const pp::Metric metric = pp::Metric::logit_diff(in.answer, in.wrong);
    pp::EdgeAttributionOptions o;
    o.method = pp::EdgeMethod::Eap;
    const pp::EdgeGraph g = pp::edge_attribution(m, in.clean, in.corrupted, metric, o);
    std::vector<std::string> names{"embed"};
    for (int L = 0; L < m.config().n_layers; ++L) {
      names.push_back("result" + std::to_string(L));
      if (g.has_mlps()) names.push_back("mlp_out" + std::to_string(L));
    }
    pp::GradientOptions go;
    go.values = true;
    const pp::Gradients clean = pp::gradients(m, in.clean, metric, names, go);
    const pp::Gradients corrupted = pp::gradients(m, in.corrupted, metric, names, go);
    const int64_t B = in.clean.size, D = m.config().d_model, H = m.config().n_heads;
    // node score: sum over rows, positions (and one head's slice) of (corrupted - clean) . gradient, / B.
    auto node_score = [&](const std::string& act, int head) {
      const pp::Tensor &g_ = clean.gradient(act), &a = clean.value_of(act), &b = corrupted.value_of(act);
      double s = 0;
      const int64_t rows = a.numel() / D / (head >= 0 ? H : 1);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t at = (head >= 0 ? r * H + head : r) * D;
        for (int64_t i = 0; i < D; ++i) s += static_cast<double>(g_.data()[at + i]) * (b.data()[at + i] - a.data()[at + i]);
      }
      return s / B;
    };
    double worst = 0, largest = 0;
    for (int s = 0; s < g.n_sources(); ++s) {
      double total = 0;
      for (int d = 0; d < g.n_destinations(); ++d)
        if (g.is_edge(s, d)) total += g.score(s, d);
      double expected = 0;
      if (s == g.input_index()) {
        expected = node_score("hook_embed", -1);
      } else {
        const int L = g.source_layer(s), h = g.source_head(s);
        expected = h >= 0 ? node_score("blocks." + std::to_string(L) + ".attn.hook_result", h)
                          : node_score("blocks." + std::to_string(L) + ".hook_mlp_out", -1);
      }
      worst = std::max(worst, std::fabs(total - expected));
      largest = std::max(largest, std::fabs(expected));
      INFO(name << " " << g.source(s) << ": sum of edges " << total << ", node " << expected);
      CHECK(std::fabs(total - expected) <= 1e-4 * std::max(1.0, std::fabs(expected)));
    }
    std::printf("EAP node decomposition %-15s worst |sum of edges - node| %.1e (largest node score %.3f)\n", name,
                worst, largest);
  }
}

TEST_CASE("faithfulness: the whole graph is the clean run, the empty one the corrupted run", "[circuits]") {
  for (const char* name : {"gpt2", "llama-gqa", "pythia"}) {
    const pp::Model& m = pptest::model(name);
    Inputs in = golden_inputs(name);
    const pp::Metric metric = pp::Metric::logit_diff(in.answer, in.wrong);
    pp::EdgeGraph g = pp::EdgeGraph::of(m);
    g.select_all();
    const pp::Faithfulness all = pp::faithfulness(m, in.clean, in.corrupted, g, metric);
    INFO(name);
    CHECK(all.circuit == all.clean);
    CHECK(all.faithfulness == 1.0f);
    CHECK(all.edges == g.n_edges());
    pp::EdgeGraph none = pp::EdgeGraph::of(m);
    const pp::Faithfulness empty = pp::faithfulness(m, in.clean, in.corrupted, none, metric);
    CHECK(empty.circuit == Approx(empty.corrupted).margin(1e-5));
    CHECK(empty.faithfulness == Approx(0.0f).margin(1e-4));
  }
}

TEST_CASE("an edge into the logits, patched alone, is path patching's direct path", "[circuits]") {
  const pp::Model& m = pptest::model("llama-gqa");
  Inputs in = golden_inputs("llama-gqa");
  const pp::Metric metric = pp::Metric::logit_diff(in.answer, in.wrong);
  const pp::EdgeGraph g = pp::EdgeGraph::of(m);
  std::vector<std::pair<int, int>> edges;
  for (int L = 0; L < m.config().n_layers; ++L)
    for (int h = 0; h < m.config().n_heads; ++h) edges.emplace_back(g.head_index(L, h), g.logits_index());
  const std::vector<float> exact = pp::exact_edge_scores(m, in.clean, in.corrupted, g, edges, metric);
  const pp::SweepResult direct = pp::sweep_senders(m, in.clean, in.corrupted, {pp::Receiver::logits()}, metric);
  for (size_t i = 0; i < edges.size(); ++i) {
    const int L = static_cast<int>(i) / m.config().n_heads, h = static_cast<int>(i) % m.config().n_heads;
    INFO(g.edge_name(edges[i].first, edges[i].second));
    CHECK(exact[i] == Approx(direct.values.at({L, h}) - direct.clean).margin(1e-5));
  }
  // And a head's key input: path patching from the sender to that receiver.
  const std::vector<float> to_keys = pp::exact_edge_scores(m, in.clean, in.corrupted, g,
                                                           {{g.head_index(0, 2), g.head_input_index(1, 1, 1)}}, metric);
  const pp::SweepResult keys =
      pp::sweep_senders(m, in.clean, in.corrupted, {pp::Receiver{pp::Receiver::K, 1, 1}}, metric);
  CHECK(to_keys[0] == Approx(keys.values.at({0, 2}) - keys.clean).margin(1e-5));
}

TEST_CASE("circuits: top-n, threshold and greedy choose and prune as EAP-IG does; JSON round trip", "[circuits]") {
  const pp::Model& m = pptest::model("gpt2");
  Inputs in = golden_inputs("gpt2");
  pp::EdgeGraph g = pp::edge_attribution(m, in.clean, in.corrupted, pp::Metric::logit_diff(in.answer, in.wrong));
  g.select_top(10);
  CHECK(g.circuit_edges() <= 10);
  CHECK(g.circuit_edges() > 0);
  // Every edge of a pruned circuit leaves a node in it and enters one (or the logits).
  for (int s = 0; s < g.n_sources(); ++s)
    for (int d = 0; d < g.n_destinations(); ++d)
      if (g.in_circuit(s, d)) {
        CHECK(g.node_in_circuit(s));
        CHECK((g.owner(d) < 0 || g.node_in_circuit(g.owner(d))));
      }
  const auto best = g.edges_by_score()[0];
  g.select_threshold(std::fabs(g.score(best.first, best.second)));
  CHECK(g.circuit_edges() <= 1);
  g.select_greedy(8);
  CHECK(g.circuit_edges() >= 1);
  CHECK(g.circuit_edges() <= 8);
  // Greedy grows from the logits: some circuit edge enters the logits.
  bool into_logits = false;
  for (int s = 0; s < g.n_sources(); ++s) into_logits |= g.in_circuit(s, g.logits_index());
  CHECK(into_logits);
  CHECK_THROWS_AS(g.select_top(g.n_edges() + 1), pp::InputError);

  const std::string json = g.to_json();
  const pp::EdgeGraph back = pp::EdgeGraph::from_json(m, json, "circuit.json");
  CHECK(back.to_json() == json);
  for (int s = 0; s < g.n_sources(); ++s)
    for (int d = 0; d < g.n_destinations(); ++d) {
      CHECK(back.score(s, d) == g.score(s, d));
      CHECK(back.in_circuit(s, d) == g.in_circuit(s, d));
    }
  CHECK(json.find("\"cfg\":{\"n_layers\":2,\"n_heads\":4,\"parallel_attn_mlp\":false,\"d_model\":64}") != std::string::npos);
  CHECK(json.find("\"input->a0.h0<q>\":{\"score\":") != std::string::npos);
  CHECK_THROWS_WITH(pp::EdgeGraph::from_json(pptest::model("pythia"), json, "x.json"),
                    Catch::Contains("parallel_attn_mlp"));
  CHECK_THROWS_WITH(pp::EdgeGraph::from_json(m, R"({"cfg": {"n_layers": 2, "n_heads": 4}, "edges": {"a1.h0->m0": {"score": 1}}})", "x.json"),
                    Catch::Contains("x.json") && Catch::Contains("a1.h0->m0"));
  CHECK_THROWS_AS(pp::EdgeGraph::from_json(m, "{", "x.json"), pp::FormatError);
}

TEST_CASE("the zoo's induction circuit: EAP-IG ranks it first, and it keeps the behaviour on new prompts",
          "[circuits][zoo]") {
  static const pp::Model m = pp::load_model(pptest::source_dir() / "models" / "zoo" / "induction-gpt2");
  auto task = [&](uint64_t seed) {
    pp::RepeatedTokens clean = pp::repeated_tokens(8, 20, 10000, 30000, seed, 50256);
    pp::Batch corrupt = pp::unrepeated_tokens(clean, 10000, 30000, seed + 100);
    std::vector<int> scored;
    for (int64_t t = clean.first_repeat(); t < clean.batch.seq - 1; ++t) scored.push_back(static_cast<int>(t));
    return std::make_tuple(clean.batch, corrupt, pp::Metric::cross_entropy(scored));
  };
  auto [clean, corrupt, loss] = task(1);
  pp::EdgeGraph g = pp::edge_attribution(m, clean, corrupt, loss);  // EAP-IG, 5 steps
  const auto ranked = g.edges_by_score();
  std::printf("induction-gpt2, EAP-IG (5 steps) on the loss of the repeated half, the top edges of %lld:\n",
              static_cast<long long>(g.n_edges()));
  for (int i = 0; i < 8; ++i)
    std::printf("  %-18s %+.4f\n", g.edge_name(ranked[i].first, ranked[i].second).c_str(),
                g.score(ranked[i].first, ranked[i].second));
  // circuit.json: previous-token head 0.2 (0.3 scores 0.64), induction head 1.1 (all of layer 1
  // scores 0.88-0.91 as induction heads). The circuit: the previous-token heads read the token
  // before (their v), write into the induction heads' keys, which write the answer.
  auto rank_of = [&](const std::string& edge) {
    return std::find(ranked.begin(), ranked.end(), g.find_edge(edge)) - ranked.begin();
  };
  CHECK(rank_of("input->a0.h2<v>") < 2);
  CHECK(rank_of("a1.h1->logits") < 6);
  CHECK(rank_of("a0.h2->a1.h1<k>") < 10);

  auto [held_clean, held_corrupt, held_loss] = task(7);  // prompts the scores never saw
  g.select_top(18);
  const pp::Faithfulness f = pp::faithfulness(m, held_clean, held_corrupt, g, held_loss);
  std::printf("  EAP-IG top 18 -> %lld edges, %lld nodes: loss clean %.3f, corrupted %.3f, circuit %.3f; faithfulness "
              "%.3f on held-out prompts\n",
              static_cast<long long>(f.edges), static_cast<long long>(f.nodes), f.clean, f.corrupted, f.circuit,
              f.faithfulness);
  CHECK(f.faithfulness >= 0.9f);
  CHECK(g.in_circuit(g.find_edge("a0.h2->a1.h1<k>").first, g.find_edge("a0.h2->a1.h1<k>").second));
  // EAP (one gradient, on the clean run) saturates here: its top 18 keep far less.
  pp::EdgeAttributionOptions eap;
  eap.method = pp::EdgeMethod::Eap;
  pp::EdgeGraph e = pp::edge_attribution(m, clean, corrupt, loss, eap);
  e.select_top(18);
  const pp::Faithfulness fe = pp::faithfulness(m, held_clean, held_corrupt, e, held_loss);
  std::printf("  EAP    top 18 -> %lld edges: faithfulness %.3f\n", static_cast<long long>(fe.edges), fe.faithfulness);
  CHECK(fe.faithfulness < f.faithfulness - 0.3f);
}

TEST_CASE("the zoo's IOI model: an EAP-IG circuit of 60 of 262 edges keeps 90% on held-out prompts",
          "[circuits][zoo]") {
  static const pp::Model m = pp::load_model(pptest::source_dir() / "models" / "zoo" / "ioi-llama");
  const auto dir = pptest::source_dir() / "models" / "zoo" / "ioi-llama";
  const pp::PromptSet all = pp::read_prompts(dir / "eval.jsonl", m, 200);
  // Rows 0-99 to score the edges, rows 100-199 to test the circuit.
  auto half = [&](const pp::Batch& b, int first) {
    std::vector<std::vector<int32_t>> rows;
    for (int i = first; i < first + 100; ++i) {
      rows.emplace_back();
      for (int64_t t = 0; t < b.seq; ++t)
        if (b.real(i, t)) rows.back().push_back(b.id(i, t));
    }
    return pp::Batch::from_rows(rows, m.pad_id());
  };
  auto metric = [&](int first) {
    return pp::Metric::logit_diff({all.answer.begin() + first, all.answer.begin() + first + 100},
                                  {all.wrong.begin() + first, all.wrong.begin() + first + 100});
  };
  pp::EdgeGraph g = pp::edge_attribution(m, half(all.clean, 0), half(all.corrupted, 0), metric(0));
  REQUIRE(g.n_edges() == 262);
  const auto ranked = g.edges_by_score();
  std::printf("ioi-llama, EAP-IG (5 steps) on the logit difference over 100 prompts, the top edges:\n");
  for (int i = 0; i < 6; ++i)
    std::printf("  %-18s %+.4f\n", g.edge_name(ranked[i].first, ranked[i].second).c_str(),
                g.score(ranked[i].first, ranked[i].second));
  // The card's finding, by gradients this time: heads 2.0 and 2.1 write the answer directly.
  auto rank_of = [&](const std::string& edge) {
    return std::find(ranked.begin(), ranked.end(), g.find_edge(edge)) - ranked.begin();
  };
  CHECK(rank_of("a2.h0->logits") < 5);
  CHECK(rank_of("a2.h1->logits") < 5);
  g.select_top(60);
  const pp::Faithfulness f = pp::faithfulness(m, half(all.clean, 100), half(all.corrupted, 100), g, metric(100));
  std::printf("  top 60 -> %lld edges, %lld nodes: logit difference clean %.3f, corrupted %.3f, circuit %.3f; "
              "faithfulness %.3f on 100 held-out prompts\n",
              static_cast<long long>(f.edges), static_cast<long long>(f.nodes), f.clean, f.corrupted, f.circuit,
              f.faithfulness);
  CHECK(f.faithfulness >= 0.9f);
}

TEST_CASE("inputs rebuilt from their sources are path patching's circuit; mean ablation", "[circuits]") {
  for (const char* name : {"gpt2", "llama-gqa", "pythia", "gpt2-attn-only"}) {
    const pp::Model& m = pptest::model(name);
    Inputs in = golden_inputs(name);
    const pp::Metric metric = pp::Metric::logit_diff(in.answer, in.wrong);
    pp::EdgeAttributionOptions eap;
    eap.method = pp::EdgeMethod::Eap;
    pp::EdgeGraph g = pp::edge_attribution(m, in.clean, in.corrupted, metric, eap);
    g.select_top(12);
    // Every edge outside the circuit carrying the corrupted run's output, as sources.
    pp::RunOptions probes;
    probes.interventions.push_back(pp::probe("hook_embed"));
    for (int L = 0; L < m.config().n_layers; ++L) {
      probes.interventions.push_back(pp::probe("result" + std::to_string(L)));
      if (g.has_mlps()) probes.interventions.push_back(pp::probe("mlp_out" + std::to_string(L)));
    }
    const pp::Result bad = pp::forward(m, in.corrupted, probes);
    const int64_t B = in.clean.size, T = in.clean.seq, D = m.config().d_model, H = m.config().n_heads;
    std::vector<pp::Tensor> ablated(g.n_sources());
    ablated[g.input_index()] = bad.probe("hook_embed");
    for (int L = 0; L < m.config().n_layers; ++L) {
      const pp::Tensor& result = bad.probe("result" + std::to_string(L));
      for (int h = 0; h < H; ++h) {
        pp::Tensor one = pp::Tensor::uninitialized({B, T, D});
        for (int64_t n = 0; n < B * T; ++n)
          std::copy_n(result.data() + (n * H + h) * D, D, one.data_mut() + n * D);
        ablated[g.head_index(L, h)] = one;
      }
      if (g.has_mlps()) ablated[g.mlp_index(L)] = bad.probe("mlp_out" + std::to_string(L));
    }
    const pp::Faithfulness exact = pp::faithfulness(m, in.clean, in.corrupted, g, metric);
    const pp::Scorer scorer(m, metric, in.clean, pp::forward(m, in.clean).hidden, bad.hidden);
    const float rebuilt = scorer.mean(pp::rebuilt_hidden(m, in.clean, g, ablated));
    INFO(name << ": path patching " << exact.circuit << ", rebuilt inputs " << rebuilt);
    CHECK(rebuilt == Approx(exact.circuit).margin(1e-4));

    // Mean ablation (over the corrupted batch): the whole graph keeps everything, none of it nothing.
    pp::EdgeGraph all = pp::EdgeGraph::of(m);
    all.select_all();
    const pp::Faithfulness full = pp::mean_ablated_faithfulness(m, in.clean, in.corrupted, in.corrupted, all, metric);
    CHECK(full.faithfulness == Approx(1.0f).margin(1e-4));
    const pp::Faithfulness none =
        pp::mean_ablated_faithfulness(m, in.clean, in.corrupted, in.corrupted, pp::EdgeGraph::of(m), metric);
    CHECK(none.faithfulness == 0.0f);
    const pp::Faithfulness some = pp::mean_ablated_faithfulness(m, in.clean, in.corrupted, in.corrupted, g, metric);
    CHECK(std::isfinite(some.faithfulness));
    CHECK(some.corrupted == none.circuit);
  }
  std::vector<pp::Tensor> wrong(3);
  CHECK_THROWS_WITH(pp::rebuilt_hidden(pptest::model("gpt2"), golden_inputs("gpt2").clean,
                                       pp::EdgeGraph::of(pptest::model("gpt2")), wrong),
                    Catch::Contains("ablated values: 3 for 11 sources"));
}
