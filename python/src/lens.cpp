// The logit lens, direct logit attribution and greedy generation (pathpatch/lens.hpp,
// pathpatch/generate.hpp).
#include "convert.hpp"

namespace pathpatch::python {

namespace {

// A lens with the model it reads through (its methods unembed with it).
struct PyLens {
  LogitLens lens;
  ModelPtr model;
};

}  // namespace

void bind_lens(py::module_& m) {
  py::class_<PyLens>(m, "LogitLens", R"(Every layer's residual stream read through the final norm (logit_lens()).

    labels: 'resid_pre0' .. 'resid_post{n-1}'; hidden: [readings, B, T, d_model].)")
      .def_property_readonly("labels", [](const PyLens& l) { return l.lens.labels; })
      .def_property_readonly("hidden", [](const PyLens& l) { return to_numpy(l.lens.hidden); })
      .def(
          "logits", [](const PyLens& l, int64_t position) { return to_numpy(l.lens.logits(*l.model, position)); },
          py::arg("position") = -1, "[readings, B, d_vocab] at one position (negative: from the end)")
      .def(
          "score",
          [](const PyLens& l, const Metric& metric) {
            return to_numpy(l.lens.score(*l.model, fitted(metric, l.lens.batch.size)));
          },
          py::arg("metric"), "The metric of every reading, per row: [readings, B] (KL: from the model's own output)")
      .def(
          "next_token_probs", [](const PyLens& l) { return to_numpy(l.lens.next_token_probs(*l.model)); },
          "p(the next input token) at every (reading, position): [readings, T - 1], mean over rows")
      .def("__repr__",
           [](const PyLens& l) { return "<LogitLens of " + std::to_string(l.lens.readings()) + " readings>"; });

  m.def(
      "logit_lens",
      [](const ModelPtr& model, const py::handle& input, const py::handle& interventions) {
        PyLens out{{}, model};
        const Batch b = to_batch(*model, input, "input");
        const RunOptions o = run_options(interventions, false, nullptr, 1'000'000);
        py::gil_scoped_release nogil;
        out.lens = logit_lens(*model, b, o);
        return out;
      },
      py::arg("model"), py::arg("input"), py::kw_only(), py::arg("interventions") = py::none(),
      R"(The logit lens (nostalgebraist's): each layer's residual stream as if it were the last, through
    the final norm (each reading normalised by its own statistics) and the unembedding.

    >>> lens = pathpatch.logit_lens(model, "When Mary and John went to the store, John gave a drink to")
    >>> lens.logits(-1).argmax(-1)   # each reading's top next token, per row)");

  py::class_<LogitAttribution>(m, "LogitAttribution", R"(Each part of the final residual's share of a logit difference.

    components: 'embed', 'pos_embed', 'a0.h0', ..., 'a0.bias' (Gemma-2: 'a0', the whole attention),
    'm0', ..., then 'ln_final.bias' (LayerNorm) and 'b_U' (processed weights);
    values [C] (mean over rows), per_example [C, B], total [B]: the shares sum to it.)")
      .def_property_readonly("components",
                             [](const LogitAttribution& d) {
                               std::vector<std::string> names;
                               for (const ResidualPart& p : d.components) names.push_back(p.name());
                               return names;
                             })
      .def_property_readonly("values", [](const LogitAttribution& d) { return to_numpy(d.values); })
      .def_property_readonly("per_example", [](const LogitAttribution& d) { return to_numpy(d.per_example); })
      .def_readonly("total", &LogitAttribution::total)
      .def_readonly("position", &LogitAttribution::position)
      .def("heads", &LogitAttribution::heads, py::arg("model"),
           "The heads' (and MLPs') shares as a Sweep over (layer, head): heatmaps, CSV, JSON")
      .def("__getitem__",
           [](const LogitAttribution& d, const std::string& name) {
             for (size_t k = 0; k < d.components.size(); ++k)
               if (d.components[k].name() == name) return d.values.data()[k];
             throw NameError("no part '" + name + "' (see .components)");
           })
      .def("__repr__", [](const LogitAttribution& d) {
        return "<LogitAttribution of " + std::to_string(d.components.size()) + " parts at position " +
               std::to_string(d.position) + ">";
      });

  m.def(
      "direct_logit_attribution",
      [](const ModelPtr& model, const py::handle& input, const py::handle& answer, const py::handle& wrong,
         int64_t position, const py::handle& interventions) {
        const Batch b = to_batch(*model, input, "input");
        const Metric tokens =
            fitted(wrong.is_none() ? Metric::log_prob(to_tokens(answer, "answer"))
                                   : Metric::logit_diff(to_tokens(answer, "answer"), to_tokens(wrong, "wrong")),
                   b.size);  // one token for every row, as the metrics take them
        const RunOptions o = run_options(interventions, false, nullptr, 1'000'000);
        py::gil_scoped_release nogil;
        return direct_logit_attribution(*model, b, tokens.answer, tokens.wrong, position, o);
      },
      py::arg("model"), py::arg("input"), py::arg("answer"), py::arg("wrong") = py::none(), py::kw_only(),
      py::arg("position") = -1, py::arg("interventions") = py::none(),
      R"(Direct logit attribution: each head's, MLP's and embedding's share of logit(answer) - logit(wrong)
    at `position`, through the final norm with its scale frozen (TransformerLens's logit_attrs).
    wrong=None: the answer's logit alone.

    >>> d = pathpatch.direct_logit_attribution(model, prompts, answer, wrong)
    >>> d["a2.h1"], d.heads(model).heatmap("dla.svg"))");

  py::class_<Generation>(m, "Generation", "Greedy continuations: tokens per row, and the extended batch")
      .def_readonly("tokens", &Generation::tokens)
      .def_readonly("batch", &Generation::batch);

  m.def(
      "generate",
      [](const ModelPtr& model, const py::handle& input, int tokens, const py::handle& interventions) {
        const Batch b = to_batch(*model, input, "input");
        const RunOptions o = run_options(interventions, false, nullptr, 1'000'000);
        py::gil_scoped_release nogil;
        return generate(*model, b, tokens, o);
      },
      py::arg("model"), py::arg("input"), py::arg("tokens"), py::kw_only(), py::arg("interventions") = py::none(),
      R"(Greedy decoding of `tokens` new tokens per row; the interventions apply at every position.

    >>> g = pathpatch.generate(model, prompt, 10, interventions=[pathpatch.zero("z0")])
    >>> model.to_string(g.tokens[0]))");
}

}  // namespace pathpatch::python
