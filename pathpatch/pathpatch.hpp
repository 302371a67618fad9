#pragma once
// pathpatch: path patching and activation patching on transformer language models, in one include.
//
// A model is a graph of named nodes (graph/graph.hpp): `emb`, per layer L `aL` (the residual plus
// the attention), `aL.head` (the attention), `fL` (the residual plus the MLP), `fL.head` (the
// MLP), then `ln_final`; every intermediate value also has its TransformerLens name
// (`blocks.1.attn.hook_z`, short `z1`). Families: gpt2, llama (and Llama-3), mistral, qwen2,
// gemma2, gpt_neox (Pythia), gpt_neo, from a Hugging Face folder (models/family.hpp).
//
// An experiment is some inputs and two predicates over paths (graph/path.hpp): `branch(path)`
// says where the computation splits into separate paths, `which(path)` which input a path reads:
//
//   #include <pathpatch/pathpatch.hpp>
//   namespace pp = pathpatch;
//
//   pp::Model model = pp::load_model("models/zoo/ioi-llama");
//   pp::Batch clean   = model.encode({"When Mary and John went to the store, John gave a drink to"});
//   pp::Batch corrupt = model.encode({"When Mary and John went to the store, Anna gave a drink to"});
//
//   auto branch = [](const pp::Path& p) { return p.back() == "a1" ? pp::Split::Edges : pp::Split::None; };
//   auto which  = [](const pp::Path& p) { return p.contains("a1") ? 1 : 0; };
//   pp::Result r = pp::run(model, {clean, corrupt}, which, branch);   // layer 1's attention reads `corrupt`
//   r.logits;   // [batch, pos, vocab]
//   r.stats;    // steps computed, cache hits, FLOPs spent and saved
//
// Nothing is computed twice: values are memoised by provenance (graph/cache.hpp), so a cache
// shared by many runs (RunOptions::cache) makes a sweep pay only for what its experiments change.
//
// Which call for which experiment:
//   run(model, inputs, which, branch)       any experiment as predicates (nano-path-patching)
//   run(model, inputs, rules)               the same as path rules, cost bounded (rules.hpp)
//   forward(model, batch, options)          the plain forward, with probes and interventions
//   activation_patching(...)                nnpatch's sites over layers, positions, heads (patching.hpp)
//   path_patch / sweep_senders / sweep_receivers   Wang et al.'s sender -> receiver path patching
//   Scorer, Metric                          logit difference, probability, KL, ... (metrics.hpp)
//   gradients(...)                          d metric / d any named activation (attribution.hpp)
//   attribution_patching(...)               AtP: activation_patching to first order, one backward
//   edge_attribution, faithfulness          EAP / EAP-IG edge scores, circuits checked exactly (circuits.hpp)
//   logit_lens, direct_logit_attribution    the residual stream read through the unembedding (lens.hpp)
//   generate(model, batch, n, options)      greedy decoding, with or without interventions (generate.hpp)
//   viz::render_provenance, viz::write_sweep, viz::circuit_graph   pictures (viz/diagrams.hpp,
//                                           viz/heatmap.hpp: include them where you draw)
// Errors are typed (graph/error.hpp): every pathpatch::Error says what was wrong and where.
#include "graph/batch.hpp"
#include "graph/error.hpp"
#include "graph/intervention.hpp"
#include "graph/path.hpp"
#include "graph/tensor.hpp"
#include "models/config.hpp"
#include "models/model.hpp"
#include "models/tokenizer.hpp"
#include "pathpatch/attribution.hpp"
#include "pathpatch/circuits.hpp"
#include "pathpatch/generate.hpp"
#include "pathpatch/lens.hpp"
#include "pathpatch/metrics.hpp"
#include "pathpatch/patching.hpp"
#include "pathpatch/rules.hpp"
#include "pathpatch/run.hpp"
