"""pathpatch: path patching and activation patching on transformer language models.

The C++ engine (pathpatch's library) from Python. Arrays come back as read-only numpy views of the
engine's buffers; long calls release the GIL; errors are ``pathpatch.Error`` subclasses.

    import pathpatch as pp

    model = pp.load_model("models/zoo/induction-2l")
    clean = model.to_tokens("When Mary and John went to the store, John gave a drink to")
    corrupt = model.to_tokens("When Alice and Bob went to the store, Bob gave a drink to")

    # The engine: which input each path reads, and where paths split.
    r = pp.run(model, [clean, corrupt],
               which=lambda path: 1 if "a1.head2" in path else 0,
               branch=lambda path: pp.Split.EDGES if path[-1] in ("a1", "a1.head") else None)
    r.logits                      # [1, T, d_vocab], read-only numpy

    # Activations by TransformerLens name.
    logits, cache = pp.run_with_cache(model, clean)
    cache["blocks.1.attn.hook_z"], cache["z", 1], cache["z1"]

    # Sweeps: numpy values with their axes, shown as heatmaps in Jupyter.
    metric = pp.Metric.logit_diff(answer=model.to_single_token(" Mary"), wrong=model.to_single_token(" John"))
    s = pp.sweep_senders(model, clean, corrupt, metric)      # every head -> logits
    s.values, s.axes, s.labels
    s.heatmap("senders.svg", baseline="clean")

Which call for what:
    load_model, Model.to_tokens / to_batch / to_str_tokens     models and text
    read_prompts                                                a JSONL prompt file (eval.jsonl)
    run (which/branch or rules), forward, run_with_cache        the engine
    replace, zero, add, set, mean, probe                        interventions
    activation_patching, path_patch, sweep_senders, sweep_receivers   experiments
    Metric.logit_diff / ... / custom                            what sweeps score
    attention, induction_scores, previous_token_scores         attention patterns
    logit_lens, direct_logit_attribution, generate             the residual stream read as logits; greedy text
    Result.provenance, Sweep.heatmap / circuit, model_graph, circuit  pictures
"""

from fnmatch import fnmatchcase as _fnmatch
from collections.abc import Mapping as _Mapping

import numpy as _np

from ._pathpatch import (  # noqa: F401  (re-exported)
    Batch,
    BudgetError,
    Cache,
    ConfigError,
    EdgeGraph,
    Error,
    Faithfulness,
    FormatError,
    Generation,
    Gradients,
    InputError,
    InternalError,
    Intervention,
    IoError,
    LogitAttribution,
    LogitLens,
    Metric,
    Model,
    NameError,
    PathRules,
    PatchingWarning,
    PredicateError,
    PromptSet,
    Receiver,
    RenderError,
    RepeatedTokens,
    Result,
    RuleError,
    Sender,
    Split,
    Sweep,
    TokenizerError,
    WeightError,
    activation_patching,
    add,
    attention,
    attribution_patching,
    circuit,
    direct_logit_attribution,
    edge_attribution,
    exact_edge_scores,
    faithfulness,
    forward,
    generate,
    gradients,
    induction_scores,
    load_model,
    logit_lens,
    model_graph,
    output_formats,
    path_patch,
    previous_token_scores,
    probe,
    read_prompts,
    repeated_tokens,
    replace,
    run,
    set,
    sweep_receivers,
    sweep_senders,
    unrepeated_tokens,
    zero,
)

__version__ = "0.1.0"

# The error classes are reached as pathpatch.NameError etc.; a star import leaves them out, so that
# it never shadows Python's own NameError.
__all__ = [
    "ActivationCache", "Batch", "Cache", "EdgeGraph", "Error", "Faithfulness", "Generation", "Gradients", "Intervention", "LogitAttribution", "LogitLens", "Metric", "Model", "PatchingWarning", "PathRules", "Receiver",
    "PromptSet", "RepeatedTokens", "Result", "Sender", "Split", "Sweep", "activation_patching", "add", "attention", "attribution_patching", "circuit",
    "direct_logit_attribution", "edge_attribution", "exact_edge_scores", "faithfulness", "forward", "generate",
    "gradients", "induction_scores", "load_model", "logit_lens", "mean", "model_graph", "output_formats", "path_patch", "previous_token_scores",
    "probe", "read_prompts", "repeated_tokens", "replace", "run", "run_with_cache", "set", "sweep_receivers", "sweep_senders",
    "unrepeated_tokens", "zero",
]

# Names TransformerLens writes without a layer, and their full forms.
_UNLAYERED = {"embed": "hook_embed", "pos_embed": "hook_pos_embed", "ln_final": "ln_final.hook_normalized"}


def _full_name(model, key):
    """The full TransformerLens name of an activation key: a full name, a short form ("z1"), a
    (name, layer) or (name, layer, sublayer) tuple as TransformerLens's get_act_name takes."""
    if isinstance(key, tuple):
        if len(key) == 2:
            name, layer = key
            key = f"{name}{layer}"
        elif len(key) == 3:
            name, layer, sub = key
            key = f"blocks.{layer}.{sub}.hook_{name}"
        else:
            raise InputError(f"activation key {key!r}: expected (name, layer) or (name, layer, sublayer)")
    if not isinstance(key, str):
        raise InputError(f"activation key {key!r}: expected a name such as 'blocks.1.attn.hook_z', 'z1' or ('z', 1)")
    return model.activation_name(_UNLAYERED.get(key, key))


class ActivationCache(_Mapping):
    """The activations of a forward, indexed as TransformerLens's ActivationCache is.

    cache["blocks.1.attn.hook_z"], cache["z1"], cache["z", 1] and cache["normalized", 0, "ln1"]
    all work; values are read-only numpy arrays (viewing the engine's buffers). Iteration and
    keys() give the full names recorded.
    """

    def __init__(self, model, values):
        self.model = model
        self._values = dict(values)

    def __getitem__(self, key):
        name = key if isinstance(key, str) and key in self._values else _full_name(self.model, key)
        try:
            return self._values[name]
        except KeyError:
            raise KeyError(f"{name} was not recorded in this cache (it holds {len(self._values)} activations; "
                           "run_with_cache(names=...) chooses them)") from None

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def stack(self, name, layers=None):
        """The activation `name` ("z", "resid_pre", ...) of every layer (or of `layers`), stacked on a
        new first axis."""
        if layers is None:
            layers = range(self.model.n_layers)
        return _np.stack([self[name, layer] for layer in layers])

    def __repr__(self):
        return f"<pathpatch.ActivationCache of {len(self._values)} activations>"


def _select_names(model, names):
    every = model.activation_names
    if names is None:
        # hook_result only when asked for: computing the attention's output head by head changes its
        # last bits, as TransformerLens's use_attn_result does.
        return [n for n in every if not n.endswith("hook_result")]
    if callable(names):
        return [n for n in every if names(n)]
    if isinstance(names, str):
        chosen = [n for n in every if _fnmatch(n, names)]
        if not chosen:
            chosen = [_full_name(model, names)]  # a short form; NameError if it is none
        return chosen
    return [_full_name(model, n) for n in names]


def run_with_cache(model, input, names=None, *, interventions=None, cache=None):
    """The forward of one input, with its activations recorded: (logits, ActivationCache).

    names: None (every activation but attn.hook_result), a glob ("blocks.1.*", "*" for all), a list
    of names (full or short), or a function name -> bool (TransformerLens's names_filter). Recording
    changes no value, except that asking for hook_result computes the attention output head by head
    (as TransformerLens's use_attn_result does), which moves the logits' last bits. With
    interventions, the recorded values are the ones the forward went on with (after them).

    >>> logits, cache = pathpatch.run_with_cache(model, "When Mary and John went")
    >>> cache["pattern", 1].shape     # (1, n_heads, T, T)
    """
    chosen = _select_names(model, names)
    ivs = list(interventions or []) + [probe(n) for n in chosen]
    r = forward(model, input, interventions=ivs, cache=cache)
    return r.logits, ActivationCache(model, {activation: value for _, activation, value in r.probes})


def mean(activation, model, dataset, heads=None, positions=None, over_positions=False):
    """Mean ablation: an intervention setting `activation` to its mean over the rows of `dataset`.

    over_positions=True also averages over positions (for activations whose second axis is
    positions), so the mean fits inputs of any length; otherwise the inputs it is used on must
    have the dataset's length. heads / positions select what changes, as in set().
    """
    name = _full_name(model, activation)
    _, recorded = run_with_cache(model, dataset, names=[name])
    value = recorded[name].mean(axis=0)
    if over_positions:
        if model.activation_axes(name)[1:2] != "T":
            raise InputError(f"mean({name}): over_positions needs a positions axis second; its axes are "
                             f"{model.activation_axes(name)}")
        value = value.mean(axis=0)
    return set(name, value, heads=heads, positions=positions)


def _sweep_to_pandas(self):
    """The values as a pandas DataFrame (two axes: rows x columns, labelled) or Series with a
    MultiIndex (other counts). Needs pandas, which pathpatch itself never does."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("Sweep.to_pandas() needs pandas (Debian: apt install python3-pandas); "
                          "Sweep.values, .axes and .labels hold the same numbers") from None
    values = self.values
    if values.ndim == 2:
        frame = pd.DataFrame(values, index=self.labels[0], columns=self.labels[1])
        frame.index.name, frame.columns.name = self.axes
        return frame
    index = pd.MultiIndex.from_product(self.labels, names=self.axes)
    return pd.Series(values.ravel(), index=index, name=self.metric)


def _sweep_repr_svg(self):
    return self.heatmap()


def _result_repr_svg(self):
    return self.provenance(format="svg")


Sweep.to_pandas = _sweep_to_pandas
Sweep._repr_svg_ = _sweep_repr_svg
Result._repr_svg_ = _result_repr_svg
