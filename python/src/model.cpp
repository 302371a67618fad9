// Models, their tokenizers, and batches of token ids.
#include <map>

#include "convert.hpp"

#include "pathpatch/analysis.hpp"
#include "pathpatch/prompts.hpp"

namespace pathpatch::python {

namespace {

const Tokenizer& tokenizer_of(const Model& m) {
  if (!m.tokenizer())
    throw TokenizerError(m.dir().string() + ": this model folder has no tokenizer (vocab.json + merges.txt, "
                         "tokenizer.model or tokenizer.json); pass token ids instead");
  return *m.tokenizer();
}

// Token ids of each text; BOS first when `prepend_bos` says so (None: where Hugging Face adds it).
std::vector<std::vector<int32_t>> encode_rows(const Model& m, const std::vector<std::string>& texts,
                                              const py::object& prepend_bos) {
  const Tokenizer& tok = tokenizer_of(m);
  const bool bos = prepend_bos.is_none() ? tok.adds_bos() : prepend_bos.cast<bool>();
  if (bos && tok.bos_id() < 0) throw TokenizerError("prepend_bos=True, but this tokenizer has no BOS token");
  std::vector<std::vector<int32_t>> rows;
  for (const std::string& t : texts) {
    std::vector<int32_t> ids = tok.encode(t);
    if (bos) ids.insert(ids.begin(), tok.bos_id());
    if (ids.empty()) throw InputError("the text '" + t + "' has no tokens");
    rows.push_back(std::move(ids));
  }
  return rows;
}

Batch to_batch_padded(const Model& m, const py::handle& texts, const py::object& prepend_bos) {
  Batch b = Batch::from_rows(encode_rows(m, to_strings(texts, "texts"), prepend_bos), m.pad_id());
  m.validate(b, "encoded text");
  return b;
}

py::array ids_array(const Batch& b) {
  py::array_t<int32_t> a({b.size, b.seq});
  std::copy(b.ids.begin(), b.ids.end(), a.mutable_data());
  return a;
}

py::list row_pieces(const Tokenizer& tok, const Batch& b, int64_t row) {
  py::list out;
  for (int64_t t = 0; t < b.seq; ++t)
    if (b.real(row, t)) out.append(tok.piece(b.id(row, t)));
  return out;
}

}  // namespace

void bind_model(py::module_& m) {
  py::class_<Batch>(m, "Batch", R"(Token ids [B, T] with their attention mask, left-padded to one length.

    Batch(ids, mask=None): ids a 2-D (or 1-D: one row) integer array; mask 1 for real tokens, 0 for
    padding (padding on the left; default: all real). model.to_batch(texts) makes one from text.)")
      .def(py::init([](const py::handle& ids, const py::object& mask) {
             Batch b = ids_to_batch(ids, "Batch ids");
             if (mask.is_none()) return b;
             py::array k = py::module_::import("numpy").attr("asarray")(mask);
             const char kind = k.dtype().kind();
             if ((kind != 'b' && kind != 'i' && kind != 'u') || k.ndim() != 2 || k.shape(0) != b.size ||
                 k.shape(1) != b.seq)
               throw InputError("Batch: mask must be 0/1 integers (or booleans) of the ids' shape, [" +
                                std::to_string(b.size) + ", " + std::to_string(b.seq) + "]");
             auto values = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(k);
             b.mask.clear();
             for (py::ssize_t i = 0; i < values.size(); ++i) {
               if (values.data()[i] != 0 && values.data()[i] != 1)
                 throw InputError("Batch: mask values must be 0 or 1, found " + std::to_string(values.data()[i]));
               b.mask.push_back(static_cast<uint8_t>(values.data()[i]));
             }
             return b;
           }),
           py::arg("ids"), py::arg("mask") = py::none())
      .def_property_readonly("ids", &ids_array, "Token ids [B, T] (int32, a copy).")
      .def_property_readonly("mask",
                             [](const Batch& b) {
                               py::array_t<uint8_t> a({b.size, b.seq});
                               std::copy(b.mask.begin(), b.mask.end(), a.mutable_data());
                               return a;
                             },
                             "1 for real tokens, 0 for padding [B, T] (uint8, a copy).")
      .def_readonly("size", &Batch::size, "Rows (B).")
      .def_readonly("seq", &Batch::seq, "Positions (T).")
      .def("__len__", [](const Batch& b) { return b.size; })
      .def("__repr__", [](const Batch& b) {
        return "Batch(" + std::to_string(b.size) + " x " + std::to_string(b.seq) + ")";
      });

  py::class_<Model, ModelPtr>(m, "Model", R"(A loaded model of any family: its config, weights, graph and tokenizer.

    Load one with pathpatch.load_model(folder). Its sizes are attributes (n_layers, n_heads, ...),
    as on TransformerLens's model.cfg.)")
      .def_property_readonly("family", [](const Model& x) { return x.config().family_name(); },
                             "The family that read the config ('gpt2', 'llama', ...).")
      .def_property_readonly("n_layers", [](const Model& x) { return x.config().n_layers; })
      .def_property_readonly("d_model", [](const Model& x) { return x.config().d_model; })
      .def_property_readonly("n_heads", [](const Model& x) { return x.config().n_heads; }, "Query heads per layer.")
      .def_property_readonly("n_kv_heads", [](const Model& x) { return x.config().n_kv_heads; },
                             "Key/value heads per layer (fewer than n_heads under grouped-query attention).")
      .def_property_readonly("d_head", [](const Model& x) { return x.config().d_head; })
      .def_property_readonly("d_mlp", [](const Model& x) { return x.config().d_mlp; })
      .def_property_readonly("d_vocab", [](const Model& x) { return x.config().vocab_size; })
      .def_property_readonly("n_ctx", [](const Model& x) { return x.config().n_ctx; })
      .def_property_readonly("n_params", [](const Model& x) { return x.config().n_params(); })
      .def_property_readonly("parallel_residual", [](const Model& x) { return x.config().parallel_residual; })
      .def_property_readonly("has_mlp", [](const Model& x) { return !x.config().attn_only; })
      .def_property_readonly("dir", [](const Model& x) { return x.dir().string(); }, "The folder it was loaded from.")
      .def_property_readonly("has_tokenizer", [](const Model& x) { return x.tokenizer() != nullptr; })
      .def_property_readonly("activation_names",
                             [](const Model& x) {
                               std::vector<std::string> out;
                               for (const auto& a : x.graph().activations()) out.push_back(a.name);
                               return out;
                             },
                             "Every activation's TransformerLens name, in the order the forward computes them.")
      .def_property_readonly("node_names",
                             [](const Model& x) {
                               std::vector<std::string> out;
                               for (const auto& n : x.graph().nodes()) out.push_back(n.text());
                               return out;
                             },
                             "The graph's node names as paths name them: emb, a0.head, a0, f0.head, f0, ..., ln_final.")
      .def("activation_axes",
           [](const Model& x, const std::string& name) {
             return x.graph().activation(x.graph().find_activation(name)).axes;
           },
           py::arg("name"),
           "One letter per axis of an activation ('BTD', 'BTHE', 'BHTS', ...; see `pathpatch info`).")
      .def("activation_name",
           [](const Model& x, const std::string& name) {
             return x.graph().activation(x.graph().find_activation(name)).name;
           },
           py::arg("name"),
           "The full TransformerLens name of an activation given in full or short form ('z1' -> "
           "'blocks.1.attn.hook_z'); NameError with the closest names if there is none.")
      .def("processed",
           [](const Model& x, bool fold_ln, bool center_writing_weights, bool center_unembed, bool fold_value_biases) {
             const WeightProcessing how{fold_ln, center_writing_weights, center_unembed, fold_value_biases};
             py::gil_scoped_release nogil;
             return std::make_shared<Model>(x.processed(how));
           },
           py::kw_only(), py::arg("fold_ln") = true, py::arg("center_writing_weights") = true,
           py::arg("center_unembed") = true, py::arg("fold_value_biases") = true,
           R"(A copy with its weights processed as TransformerLens's from_pretrained processes them: the
    norms folded into the weights that read them, what writes to the residual stream and the
    unembedding centred, value biases folded into the output bias. Activations take
    TransformerLens's values; the next-token probabilities stay the same.)")
      .def("to_tokens",
           [](const Model& x, const py::handle& text, const py::object& prepend_bos) {
             std::vector<std::vector<int32_t>> rows = encode_rows(x, to_strings(text, "text"), prepend_bos);
             for (const auto& r : rows)
               if (r.size() != rows[0].size())
                 throw InputError("to_tokens: the texts have different numbers of tokens; model.to_batch(texts) "
                                  "left-pads them with a mask");
             Batch b = Batch::from_rows(rows);
             x.validate(b, "encoded text");
             return ids_array(b);
           },
           py::arg("text"), py::arg("prepend_bos") = py::none(),
           R"(Token ids [B, T] (int32) of a string (B = 1) or of a list of strings of equal token counts.

    prepend_bos: None adds BOS where Hugging Face's tokenizer does (Llama), True / False force it.)")
      .def("to_batch",
           [](const Model& x, const py::handle& texts, const py::object& prepend_bos) {
             return to_batch_padded(x, texts, prepend_bos);
           },
           py::arg("texts"), py::arg("prepend_bos") = py::none(),
           "A Batch of one or more texts, left-padded to the longest with a mask.")
      .def("to_str_tokens",
           [](const Model& x, const py::handle& input, const py::object& prepend_bos) -> py::object {
             const Tokenizer& tok = tokenizer_of(x);
             if (py::isinstance<py::str>(input)) return row_pieces(tok, to_batch_padded(x, input, prepend_bos), 0);
             const bool texts = is_text_list(input);
             Batch b = texts ? to_batch_padded(x, input, prepend_bos) : to_batch(x, input, "to_str_tokens");
             const bool one_row = !texts && !py::isinstance<Batch>(input) &&
                                  py::module_::import("numpy").attr("ndim")(input).cast<int>() == 1;
             if (one_row) return row_pieces(tok, b, 0);
             py::list rows;
             for (int64_t r = 0; r < b.size; ++r) rows.append(row_pieces(tok, b, r));
             return rows;
           },
           py::arg("input"), py::arg("prepend_bos") = py::none(),
           "Each token as text (' Mary'): a list for a string or a 1-D row of ids; a list of lists for a list "
           "of strings, 2-D ids or a Batch (padding left out).")
      .def("to_string",
           [](const Model& x, const py::handle& ids) {
             std::vector<int> v = to_ints(ids, "to_string");
             for (int id : v)
               if (id < 0 || id >= x.config().vocab_size)
                 throw InputError("to_string: token id " + std::to_string(id) + " is outside the vocabulary of " +
                                  std::to_string(x.config().vocab_size));
             return tokenizer_of(x).decode(std::vector<int32_t>(v.begin(), v.end()));
           },
           py::arg("ids"), "The text a 1-D sequence of token ids stands for.")
      .def("to_single_token",
           [](const Model& x, const std::string& text) {
             std::vector<int32_t> ids = tokenizer_of(x).encode(text);
             if (ids.size() != 1)
               throw TokenizerError("to_single_token: '" + text + "' is " + std::to_string(ids.size()) +
                                    " tokens, not one");
             return ids[0];
           },
           py::arg("text"), "The id of a text that is exactly one token (no BOS); TokenizerError otherwise.")
      .def("next_token",
           [](const Model& x, const std::string& prompt, const std::string& continuation) {
             return next_token(tokenizer_of(x), prompt, continuation);
           },
           py::arg("prompt"), py::arg("continuation"),
           "The one token `continuation` adds after `prompt` (an answer ' Mary' after '... gave a drink to'); "
           "TokenizerError unless it is exactly one more token.")
      .def("__repr__", [](const Model& x) {
        return "<pathpatch.Model " + std::string(x.config().family_name()) + " from '" + x.dir().string() + "': " +
               std::to_string(x.config().n_layers) + " layers, " + std::to_string(x.config().n_heads) + " heads, d_model " +
               std::to_string(x.config().d_model) + ">";
      })
      .def("summary", [](const Model& x) { return x.config().summary(); }, "The config in a few lines.");

  m.def("load_model",
        [](const std::string& dir, bool map_weights, bool process_weights) {
          py::gil_scoped_release nogil;
          Model loaded = Model::load(dir, map_weights ? WeightAccess::Map : WeightAccess::Read);
          return std::make_shared<Model>(process_weights ? loaded.processed() : std::move(loaded));
        },
        py::arg("dir"), py::arg("map_weights") = false, py::arg("process_weights") = false,
        R"(Loads a model folder in Hugging Face's layout (config.json, *.safetensors, tokenizer files).

    map_weights=True maps F32 weight files instead of reading them (faster to load; the file must not
    change while the model lives). process_weights=True processes them as TransformerLens's
    from_pretrained does (Model.processed()).

    >>> model = pathpatch.load_model("models/zoo/induction-2l")
    >>> model.n_layers, model.n_heads
    (2, 4))");

  // Head scores read off attention patterns (pathpatch/analysis.hpp).
  py::class_<RepeatedTokens>(m, "RepeatedTokens", "Rows of [bos] + s + s: a random sequence s repeated (induction's input).")
      .def_readonly("batch", &RepeatedTokens::batch)
      .def_readonly("half", &RepeatedTokens::half, "The length of s.")
      .def_property_readonly("first_repeat", &RepeatedTokens::first_repeat, "The first position of the repeat.");
  m.def("repeated_tokens", &repeated_tokens, py::arg("rows"), py::arg("half"), py::arg("lo"), py::arg("hi"),
        py::arg("seed") = 0, py::arg("bos") = -1,
        "`rows` sequences of [bos] + s + s, s being `half` tokens drawn from [lo, hi) (bos < 0: none).");
  m.def("unrepeated_tokens", &unrepeated_tokens, py::arg("repeated"), py::arg("lo"), py::arg("hi"), py::arg("seed") = 1,
        "The same rows with the first copy of s replaced by other tokens: induction's corrupted input.");
  m.def("induction_scores",
        [](const Model& model, const RepeatedTokens& r) {
          Tensor t;
          {
            py::gil_scoped_release nogil;
            t = induction_scores(model, r);
          }
          return to_numpy(t);
        },
        py::arg("model"), py::arg("repeated"),
        "Mean attention [layer, head] from each repeated position to the token after its earlier copy.");
  m.def("previous_token_scores",
        [](const ModelPtr& model, const py::handle& input) {
          Batch b = to_batch(*model, input, "input");
          Tensor t;
          {
            py::gil_scoped_release nogil;
            t = previous_token_scores(*model, b);
          }
          return to_numpy(t);
        },
        py::arg("model"), py::arg("input"), "Mean attention [layer, head] from each position to the one before it.");

  py::class_<PromptSet>(m, "PromptSet", "The experiments of a prompt file (pathpatch.read_prompts).")
      .def_readonly("clean", &PromptSet::clean, "The clean prompts, one row each, left-padded.")
      .def_readonly("corrupted", &PromptSet::corrupted, "The corrupted prompts, row for row.")
      .def_readonly("answer", &PromptSet::answer, "The answer token per row (empty if the file gives none).")
      .def_readonly("wrong", &PromptSet::wrong, "The distractor token per row (empty if the file gives none).")
      .def_readonly("texts", &PromptSet::texts, "The clean prompts as text ('' where a line gives ids only).")
      .def_readonly("lines", &PromptSet::lines, "Each row's line in the file.")
      .def_readonly("positions", &PromptSet::positions,
                    "Named positions (the file's pos_NAME fields): per row, its column of the padded batch.")
      .def("column", &PromptSet::column, py::arg("name"),
           "The one column a named position is in every row (InputError if rows differ: use where=).")
      .def("__len__", [](const PromptSet& p) { return p.clean.size; })
      .def("__repr__", [](const PromptSet& p) {
        return "<pathpatch.PromptSet of " + std::to_string(p.clean.size) + " prompts, " + std::to_string(p.clean.seq) +
               " positions>";
      });
  m.def("read_prompts",
        [](const Model& model, const py::handle& path, size_t limit, const std::map<std::string, std::string>& where) {
          const std::string file = py::str(path);
          std::vector<PromptFilter> only;
          for (const auto& [key, value] : where) only.push_back({key, value});
          py::gil_scoped_release nogil;
          return read_prompts(file, model, limit, only);
        },
        py::arg("model"), py::arg("path"), py::arg("limit") = 0,
        py::arg("where") = std::map<std::string, std::string>{},
        R"(Reads a JSONL prompt file (the zoo's eval.jsonl format; pathpatch/prompts.hpp): per line clean
    (or prompt), corrupt, answer, wrong, or their ids forms ids, corrupt_ids, answer_id, wrong_id.
    Rows of different lengths are left-padded into one batch; limit > 0 reads the first lines only;
    where={"template": "heldout_0"} keeps the lines whose fields hold those values (strings, or
    numbers written as text), so that a fixed position is one token of every row.

    >>> p = pathpatch.read_prompts(model, "models/zoo/ioi-llama/eval.jsonl", limit=64)
    >>> s = pathpatch.sweep_senders(model, p.clean, p.corrupted, pathpatch.Metric.logit_diff(p.answer, p.wrong))
    >>> s.per_example.shape    # (n_layers, n_heads, 64))");
}

}  // namespace pathpatch::python
