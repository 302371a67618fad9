"""The module's behaviour: inputs, predicates, caches, interventions, metrics, results and pictures."""
import gc
import os
import signal
import sys
import traceback

import numpy as np
import pytest

import pathpatch as pp
from conftest import CLEAN, CORRUPT, GOLDEN, ZOO


# ---- models and text ---------------------------------------------------------------------------

def test_model_attributes(ioi):
    assert (ioi.family, ioi.n_layers, ioi.n_heads, ioi.d_model) == ("llama", 3, 4, 128)
    assert ioi.d_head * ioi.n_heads == ioi.d_model and ioi.n_kv_heads <= ioi.n_heads
    assert ioi.node_names[0] == "emb" and ioi.node_names[-1] == "ln_final"
    assert "blocks.1.attn.hook_z" in ioi.activation_names
    assert ioi.activation_name("z1") == "blocks.1.attn.hook_z"
    assert ioi.activation_axes("z1") == "BTHE"
    assert "llama" in repr(ioi)


def test_tokens(ioi, induction):
    ids = ioi.to_tokens(CLEAN)
    assert ids.dtype == np.int32 and ids.shape[0] == 1 and ids[0, 0] == 1  # Llama prepends BOS
    assert ioi.to_tokens(CLEAN, prepend_bos=False).shape[1] == ids.shape[1] - 1
    assert induction.to_tokens("a b c")[0, 0] != 50256  # GPT-2 does not
    pieces = ioi.to_str_tokens(CLEAN)
    assert pieces[:3] == ["<s>", " When", " Mary"] and len(pieces) == ids.shape[1]
    assert ioi.to_str_tokens(ids[0]) == pieces and ioi.to_str_tokens(ids) == [pieces]
    assert ioi.to_string(ids[0, 1:]) == CLEAN
    assert ioi.next_token(CLEAN, " Mary") == ioi.to_tokens(CLEAN + " Mary")[0, -1]
    with pytest.raises(pp.InputError, match="to_batch"):
        ioi.to_tokens(["one two", "one two three four"])
    b = ioi.to_batch(["one two", "one two three four"])
    assert b.mask[0, 0] == 0 and b.mask[1].all() and b.ids.shape == b.mask.shape
    assert ioi.to_str_tokens(b)[0] == ioi.to_str_tokens("one two")
    with pytest.raises(pp.TokenizerError, match="not one"):
        ioi.to_single_token(" Mary and")


def test_inputs_accept_text_lists_numpy_and_batches(ioi):
    ids = ioi.to_tokens(CLEAN)
    ref = pp.forward(ioi, ids).logits
    for same in (CLEAN, [CLEAN], ids.astype(np.int64), ids[0].tolist(), ids.tolist(), pp.Batch(ids)):
        assert np.array_equal(pp.forward(ioi, same).logits, ref)


def test_bad_inputs_say_what_and_where(ioi):
    with pytest.raises(pp.InputError, match="integers"):
        pp.forward(ioi, np.array([[1.0, 2.0]]))
    with pytest.raises(pp.InputError, match="vocabulary|outside"):
        pp.forward(ioi, [1, 2, ioi.d_vocab])
    with pytest.raises(pp.InputError, match="not a valid id"):
        pp.forward(ioi, [1, -3])
    with pytest.raises(pp.InputError, match="different lengths"):
        pp.forward(ioi, [[1, 2], [1, 2, 3]])
    with pytest.raises(pp.InputError, match="integers"):
        pp.Batch([[1.5, 2.0]])
    with pytest.raises(pp.InputError, match="mask"):
        pp.Batch([[1, 2]], mask=[[1, 2]])
    with pytest.raises(pp.InputError, match="padding"):  # padding on the right
        pp.forward(ioi, pp.Batch([[1, 2]], mask=[[1, 0]]))
    with pytest.raises(pp.InputError, match="numbers"):
        pp.add("resid_pre1", "steer")
    with pytest.raises(pp.InputError, match="list of inputs"):
        pp.run(ioi, CLEAN)
    with pytest.raises(pp.InputError):  # clean and corrupted of different lengths
        pp.run(ioi, [CLEAN, "When Mary"])
    with pytest.raises(TypeError):
        pp.forward("not a model", CLEAN)
    with pytest.raises(pp.NameError, match="closest"):
        pp.forward(ioi, CLEAN, interventions=[pp.zero("blocks.1.attn.hook_zz")])
    with pytest.raises(pp.InputError, match="head"):
        pp.forward(ioi, CLEAN, interventions=[pp.zero("z1", heads=[ioi.n_heads])])
    with pytest.raises(pp.InputError):
        pp.forward(ioi, CLEAN, interventions=[pp.add("resid_pre1", np.ones(ioi.d_model + 1))])
    with pytest.raises(pp.IoError):
        pp.load_model("/nonexistent/model")
    assert issubclass(pp.InputError, pp.Error) and issubclass(pp.InputError, ValueError)
    assert issubclass(pp.IoError, OSError) and issubclass(pp.NameError, LookupError)


# ---- the engine --------------------------------------------------------------------------------

def test_run_with_python_predicates_matches_path_rules(ioi, ioi_prompts):
    clean, corrupt, _, _ = ioi_prompts
    seen = []

    def which(path):
        seen.append(path)
        return 1 if "a1.head2" in path else 0

    def branch(path):
        return pp.Split.EDGES if path[-1] in ("a1", "a1.head") else None

    r = pp.run(ioi, [clean, corrupt], which, branch)
    rules = pp.run(ioi, [clean, corrupt], rules="a1.head2")  # every path through a1.head2 reads input 1
    np.testing.assert_allclose(r.logits, rules.logits, atol=1e-5)
    assert all(isinstance(p, tuple) and p[0] == "ln_final" and p[-1] == "emb" for p in seen)
    assert any("a1.head2" in p for p in seen) and r.stats["node_visits"] > 0
    # Not a no-op: the corrupted head changes the logits.
    assert not np.array_equal(r.logits, pp.forward(ioi, clean).logits)


def test_predicates_that_raise_propagate_with_their_traceback(ioi, ioi_prompts):
    clean, corrupt, _, _ = ioi_prompts

    def which(path):
        if "a2" in path:
            raise ZeroDivisionError("my predicate failed")
        return 0

    with pytest.raises(ZeroDivisionError, match="my predicate failed") as info:
        pp.run(ioi, [clean, corrupt], which, lambda p: None)
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert "which" in frames
    with pytest.raises(pp.PredicateError, match="must return pathpatch.Split"):
        pp.run(ioi, [clean, corrupt], None, lambda p: True)
    with pytest.raises(pp.PredicateError, match="index of an input"):
        pp.run(ioi, [clean, corrupt], lambda p: "clean")
    with pytest.raises(pp.PredicateError, match="there are 2 inputs"):
        pp.run(ioi, [clean, corrupt], lambda p: 5)
    with pytest.raises(pp.InputError, match="not both"):
        pp.run(ioi, [clean, corrupt], lambda p: 0, rules="a1")
    with pytest.raises(pp.RuleError):
        pp.run(ioi, [clean, corrupt], rules="a1 (")
    # The model is fine afterwards.
    assert pp.forward(ioi, clean).logits.shape[0] == 1


def test_results_outlive_their_model_and_cache():
    def make():
        model = pp.load_model(str(ZOO / "induction-gpt2"))
        cache = pp.Cache()
        r = pp.forward(model, [5, 6, 7, 8], cache=cache, interventions=[pp.probe("z0")])
        logits, acts = pp.run_with_cache(model, [5, 6, 7, 8], names="blocks.0.*")
        assert "blocks.0.attn.hook_result" in acts  # asked for by the glob
        return r, r.logits, r.probe("z0"), acts, pp.forward(model, [5, 6, 7, 8]).logits.copy()

    r, logits, z0, acts, expected = make()
    gc.collect()
    assert np.array_equal(logits, expected) and np.array_equal(r.logits, expected)
    assert z0.shape == (1, 4, 4, 32) and np.isfinite(z0).all()
    assert acts["z", 0].shape == z0.shape and len(acts) > 3
    assert r.provenance().startswith("<?xml")  # the result keeps its model for drawing
    with pytest.raises(ValueError):
        logits[0, 0, 0] = 1.0  # the engine's buffers are read-only


def test_sweep_values_outlive_the_sweep(ioi, ioi_prompts):
    clean, corrupt, metric, _ = ioi_prompts
    values = pp.sweep_senders(ioi, clean, corrupt, metric).values
    gc.collect()
    assert values.shape == (3, 4) and np.isfinite(values).all()
    assert not values.flags.writeable and values.base is not None  # a view, not a copy


def test_activation_cache_keys(ioi):
    logits, cache = pp.run_with_cache(ioi, CLEAN)
    assert np.array_equal(logits, pp.forward(ioi, CLEAN).logits)  # recording changes nothing
    assert not any(name.endswith("hook_result") for name in cache)
    with pytest.raises(KeyError, match="not recorded"):
        cache["result", 0]
    z = cache["blocks.1.attn.hook_z"]
    assert cache["z", 1] is z and cache["z1"] is z
    assert cache["normalized", 0, "ln1"] is cache["blocks.0.ln1.hook_normalized"]
    assert cache["embed"].shape == (1, logits.shape[1], ioi.d_model)
    assert cache.stack("resid_pre").shape == (ioi.n_layers, 1, logits.shape[1], ioi.d_model)
    only = pp.run_with_cache(ioi, CLEAN, names=["z1", "pattern0"])[1]
    assert sorted(only) == ["blocks.0.attn.hook_pattern", "blocks.1.attn.hook_z"]
    assert np.array_equal(only["z1"], z)
    with pytest.raises(KeyError, match="not recorded"):
        only["z0"]
    with pytest.raises(pp.NameError):
        cache["zz", 1]
    filtered = pp.run_with_cache(ioi, CLEAN, names=lambda n: n.endswith("hook_pattern"))[1]
    assert len(filtered) == ioi.n_layers


def test_interventions(ioi, ioi_prompts):
    clean, corrupt, _, _ = ioi_prompts
    _, zeroed = pp.run_with_cache(ioi, clean, names=["z1"], interventions=[pp.zero("z1", heads=[2], positions=[-1])])
    _, plain = pp.run_with_cache(ioi, clean, names=["z1"])
    z, p = zeroed["z1"], plain["z1"]
    assert (z[0, -1, 2] == 0).all() and np.array_equal(z[0, :-1], p[0, :-1]) and np.array_equal(z[0, -1, :2], p[0, -1, :2])
    # replace from input 1 through run(): the run of input 0 with layer 1's z from input 1.
    r = pp.run(ioi, [clean, corrupt], interventions=[pp.replace("z1", 1)])
    _, corrupted = pp.run_with_cache(ioi, corrupt, names=["z1"])
    _, patched = pp.run_with_cache(ioi, clean, names=["z1"], interventions=[pp.set("z1", corrupted["z1"][0])])
    assert np.allclose(r.logits, pp.forward(ioi, clean, interventions=[pp.set("z1", corrupted["z1"][0])]).logits,
                       atol=1e-5)
    assert np.array_equal(patched["z1"], corrupted["z1"])
    steer = np.zeros(ioi.d_model, dtype=np.float32)
    steer[0] = 5
    _, added = pp.run_with_cache(ioi, clean, names=["resid_pre2"], interventions=[pp.add("resid_pre2", steer)])
    _, base = pp.run_with_cache(ioi, clean, names=["resid_pre2"])
    assert np.allclose(added["resid_pre2"] - base["resid_pre2"], np.broadcast_to(steer, base["resid_pre2"].shape))
    m = pp.mean("z1", ioi, ioi.to_batch([CLEAN, CORRUPT]))
    assert m.op == "set" and m.value.shape == (clean.shape[1], ioi.n_heads, ioi.d_head)
    m2 = pp.mean("resid_pre1", ioi, ioi.to_batch([CLEAN, CORRUPT]), over_positions=True)
    assert m2.value.shape == (ioi.d_model,)
    assert pp.forward(ioi, "When Mary", interventions=[m2]).logits.shape[1] == ioi.to_tokens("When Mary").shape[1]
    assert "zero('z1'" in repr(pp.zero("z1", heads=2))


def test_shared_cache_reuses_work(ioi, ioi_prompts):
    clean, corrupt, _, _ = ioi_prompts
    cache = pp.Cache()
    first = pp.run(ioi, [clean, corrupt], rules="a1.head2", cache=cache)
    again = pp.run(ioi, [clean, corrupt], rules="a1.head2", cache=cache)
    assert first.stats["computed"] > 0 and again.stats["computed"] == 0 and again.stats["cache_hits"] > 0
    assert np.array_equal(first.logits, again.logits) and cache.entries > 0


# ---- experiments and metrics --------------------------------------------------------------------

def test_python_metric_equals_the_builtin(ioi, ioi_prompts):
    clean, corrupt, metric, (mary, john) = ioi_prompts
    calls = []

    def logit_diff(logits):
        calls.append(logits.shape)
        return logits[:, -1, mary] - logits[:, -1, john]

    builtin = pp.sweep_senders(ioi, clean, corrupt, metric)
    custom = pp.sweep_senders(ioi, clean, corrupt, pp.Metric.custom(logit_diff, "Mary - John"))
    assert custom.metric == "Mary - John" and calls[0] == (1, 1, ioi.d_vocab)
    assert len(calls) >= ioi.n_layers * ioi.n_heads
    np.testing.assert_allclose(custom.values, builtin.values, atol=1e-4)
    assert abs(custom.clean - builtin.clean) < 1e-4
    # A scalar for the batch works too (every row gets it).
    scalar = pp.sweep_senders(ioi, clean, corrupt, pp.Metric.custom(lambda l: float(logit_diff(l).mean())))
    np.testing.assert_allclose(scalar.values, builtin.values, atol=1e-4)


def test_python_metric_errors(ioi, ioi_prompts):
    clean, corrupt, _, _ = ioi_prompts

    def broken(logits):
        raise RuntimeError("metric exploded")

    with pytest.raises(RuntimeError, match="metric exploded"):
        pp.sweep_senders(ioi, clean, corrupt, pp.Metric.custom(broken))
    with pytest.raises(pp.InputError, match="one number per batch row"):
        pp.sweep_senders(ioi, clean, corrupt, pp.Metric.custom(lambda l: "high"))
    with pytest.raises(pp.InputError, match="returned 3 values for a batch of 1"):
        pp.sweep_senders(ioi, clean, corrupt, pp.Metric.custom(lambda l: [1.0, 2.0, 3.0]))
    with pytest.raises(pp.InputError, match="finite"):
        pp.sweep_senders(ioi, clean, corrupt, pp.Metric.custom(lambda l: float("nan")))


def test_metrics_and_directions(ioi, ioi_prompts):
    clean, corrupt, metric, (mary, john) = ioi_prompts
    norm = pp.Metric.normalized_logit_diff(mary, john)
    s = pp.activation_patching(ioi, clean, corrupt, norm, sites=["resid_pre"], positions="all")["resid_pre"]
    # Denoising resid_pre at layer 0 with every position patched is the clean run: 1.
    assert s.values[0] == pytest.approx(1.0, abs=1e-5) and s.axes == ["layer"]
    noised = pp.activation_patching(ioi, clean, corrupt, norm, sites=["resid_pre"], direction="noise")["resid_pre"]
    assert noised.values[0] == pytest.approx(0.0, abs=1e-5)
    for m in (pp.Metric.prob(mary), pp.Metric.log_prob(mary), pp.Metric.kl(), pp.Metric.cross_entropy()):
        out = pp.activation_patching(ioi, clean, corrupt, m, sites="attn_out", positions="last")["attn_out"]
        assert out.values.shape == (ioi.n_layers,) and np.isfinite(out.values).all(), m.name
    with pytest.raises(pp.InputError, match="direction"):
        pp.activation_patching(ioi, clean, corrupt, metric, direction="sideways")
    with pytest.raises(pp.InputError, match="positions"):
        pp.activation_patching(ioi, clean, corrupt, metric, positions="first")
    with pytest.raises(pp.NameError):
        pp.activation_patching(ioi, clean, corrupt, metric, sites=["resid_middle"])


def test_path_patch_and_sweeps(ioi, ioi_prompts):
    clean, corrupt, metric, (mary, john) = ioi_prompts
    senders = pp.sweep_senders(ioi, clean, corrupt, metric)
    for layer in range(ioi.n_layers):
        for head in range(ioi.n_heads):
            r = pp.path_patch(ioi, clean, corrupt, senders=(layer, head))
            ld = r.logits[0, -1, mary] - r.logits[0, -1, john]
            assert ld == pytest.approx(senders.values[layer, head], abs=1e-4)
    r = pp.path_patch(ioi, clean, corrupt, senders=["a0.head1", "f0"], receivers=["a2.head1.q", ("k", 2, 0)])
    assert r.logits.shape == (1, clean.shape[1], ioi.d_vocab)
    assert repr(pp.Sender(1)) == "Sender(f1)" and pp.Sender(0, 3).head == 3
    with pytest.raises(pp.InputError, match="sender"):
        pp.path_patch(ioi, clean, corrupt, senders="head 3")
    with pytest.raises(pp.InputError, match="receiver"):
        pp.path_patch(ioi, clean, corrupt, senders="a0.h1", receivers="a2.head1.x")
    with pytest.raises(pp.RuleError):  # a receiver before its sender
        pp.path_patch(ioi, clean, corrupt, senders="a2.head0", receivers="a1.head0.q")


def test_receivers_at_positions(ioi, ioi_prompts):
    clean, corrupt, metric, _ = ioi_prompts
    end = clean.shape[1] - 1
    by_name = pp.path_patch(ioi, clean, corrupt, senders="a1.head3", receivers=f"a2.head0.q.pos{end}")
    by_tuple = pp.path_patch(ioi, clean, corrupt, senders="a1.head3", receivers=("q", 2, 0, [-1]))
    by_class = pp.path_patch(ioi, clean, corrupt, senders="a1.head3", receivers=pp.Receiver("q", 2, 0, positions=[-1]))
    assert np.array_equal(by_name.logits, by_tuple.logits) and np.array_equal(by_name.logits, by_class.logits)
    everywhere = pp.path_patch(ioi, clean, corrupt, senders="a1.head3", receivers="a2.head0.q")
    # Layer 2 is the last: its query at END moves the logits at END as its query everywhere does,
    # and no other row.
    assert np.allclose(by_name.logits[:, end], everywhere.logits[:, end], atol=1e-4)
    plain = pp.forward(ioi, clean)
    assert np.allclose(by_name.logits[:, :end], plain.logits[:, :end], atol=1e-5)
    assert repr(pp.Receiver("q", 2, 0, [-1])) == "Receiver(q, a2.head0 at -1)"
    s = pp.sweep_receivers(ioi, clean, corrupt, metric, senders="a0.head1", kind="k", positions=[-1])
    assert np.isnan(s.values[0]).all() and not np.isnan(s.values[1:]).any()
    with pytest.raises(pp.InputError, match="outside the input"):
        pp.path_patch(ioi, clean, corrupt, senders="a1.head3", receivers=("q", 2, 0, [end + 1]))


def test_senders_at_positions(ioi, ioi_prompts):
    clean, corrupt, metric, _ = ioi_prompts
    # A sender's row reaches the receiver's row alone: its positions are the receiver's.
    by_sender = pp.path_patch(ioi, clean, corrupt, senders=(0, 2, [-1]), receivers="a2.head1.v")
    by_receiver = pp.path_patch(ioi, clean, corrupt, senders=(0, 2), receivers=("v", 2, 1, [-1]))
    assert np.array_equal(by_sender.logits, by_receiver.logits)
    assert repr(pp.Sender(0, 2, [-1])) == "Sender(a0.head2 at -1)" and pp.Sender(0, 2, [-1]).positions == [-1]
    # To the logits, read at the last position: senders there are all senders there.
    end = pp.sweep_senders(ioi, clean, corrupt, metric, sender_positions=[-1])
    every = pp.sweep_senders(ioi, clean, corrupt, metric)
    np.testing.assert_allclose(end.values, every.values, atol=1e-4)
    with pytest.raises(pp.RuleError, match="sends nothing"):
        pp.path_patch(ioi, clean, corrupt, senders=pp.Sender(0, 2, [3]), receivers=("v", 2, 1, [4]))


def test_ctrl_c_stops_a_sweep_cleanly(ioi, ioi_prompts):
    clean, corrupt, metric, _ = ioi_prompts
    cache = pp.Cache()
    calls = []

    def interrupt(done, total):
        calls.append(done)
        os.kill(os.getpid(), signal.SIGINT)  # as a user's Ctrl-C: Python sees it at the next check

    with pytest.raises(KeyboardInterrupt):
        pp.activation_patching(ioi, clean, corrupt, metric, sites=["z"], positions="each", cache=cache,
                               progress=interrupt)
    assert len(calls) == 1
    # Nothing is left half-done: the same cache serves the whole sweep afterwards.
    full = pp.activation_patching(ioi, clean, corrupt, metric, sites=["z"], positions="each", cache=cache)
    fresh = pp.activation_patching(ioi, clean, corrupt, metric, sites=["z"], positions="each")
    assert np.array_equal(full["z"].values, fresh["z"].values)


def test_progress_reports(ioi, ioi_prompts):
    clean, corrupt, metric, _ = ioi_prompts
    seen = []
    pp.sweep_senders(ioi, clean, corrupt, metric, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1] == ioi.n_layers * ioi.n_heads


# ---- pictures and tables -----------------------------------------------------------------------

def test_sweep_pictures_and_tables(ioi, ioi_prompts, tmp_path, monkeypatch):
    clean, corrupt, metric, _ = ioi_prompts
    s = pp.sweep_senders(ioi, clean, corrupt, metric)
    svg = s._repr_svg_()
    assert svg.startswith("<svg") or svg.startswith("<?xml")
    assert s.heatmap(baseline="clean", limit=5) != svg
    for name in ("s.svg", "s.csv", "s.json", "s.png"):
        s.heatmap(tmp_path / name)
        assert (tmp_path / name).stat().st_size > 0
    assert s.csv().splitlines()[0] == "layer,head,value"
    assert '"axes"' in s.json()
    change = s.relative_to("clean")
    np.testing.assert_allclose(change.values, s.values - s.clean, atol=1e-6)
    assert "<svg" in s.circuit(0.5, baseline="clean")
    s.circuit(0.5, tmp_path / "c.dot", baseline="clean")
    assert "digraph" in (tmp_path / "c.dot").read_text()
    with pytest.raises(pp.RenderError):
        s.heatmap(tmp_path / "s.unknown")
    with pytest.raises(pp.InputError, match="baseline"):
        s.heatmap(baseline="sometimes")
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="needs pandas"):
        s.to_pandas()


def test_to_pandas_labels_rows_and_columns(ioi, ioi_prompts, monkeypatch):
    """pandas is not a dependency (nor installed in CI): a stand-in records what to_pandas builds."""
    import types

    class Axis:
        name = None

    class DataFrame:
        def __init__(self, values, index, columns):
            self.values, self.index_labels, self.column_labels = values, index, columns
            self.index, self.columns = Axis(), Axis()

    fake = types.SimpleNamespace(DataFrame=DataFrame)
    monkeypatch.setitem(sys.modules, "pandas", fake)
    clean, corrupt, metric, _ = ioi_prompts
    s = pp.sweep_senders(ioi, clean, corrupt, metric)
    frame = s.to_pandas()
    assert frame.values is not None and np.array_equal(frame.values, s.values)
    assert (frame.index.name, frame.columns.name) == ("layer", "head")
    assert frame.index_labels == s.labels[0] and frame.column_labels == s.labels[1]


def test_diagrams(ioi, ioi_prompts, tmp_path):
    clean, corrupt, _, _ = ioi_prompts
    r = pp.run(ioi, [clean, corrupt], rules="a1.head2")
    assert "clean" in r.provenance(input_names=["clean", "corrupted"])
    assert r.provenance(format="png").startswith(b"\x89PNG")
    r.provenance(tmp_path / "p.svg")
    assert (tmp_path / "p.svg").read_text().count("<g") > 3
    assert "digraph" in pp.model_graph(ioi, "heads", format="dot")
    pp.model_graph(ioi, path=tmp_path / "m.svg")
    assert "a1.head2" in pp.circuit([("a0.head1", "a1.head2.k", 1.5), ("a1.head2", "logits", -2.0)], format="dot")
    assert "svg" in pp.output_formats()
    with pytest.raises(pp.InputError, match="granularity"):
        pp.model_graph(ioi, "neurons")


def test_induction_scores(induction):
    rep = pp.repeated_tokens(8, 20, 10000, 30000, seed=3, bos=50256)
    scores = pp.induction_scores(induction, rep)
    assert scores.shape == (2, 4) and scores.max() > 0.5  # the zoo model has induction heads
    prev = pp.previous_token_scores(induction, rep.batch)
    assert prev.shape == (2, 4) and prev.max() > 0.5
    assert rep.first_repeat == rep.batch.seq - 20


def test_docstrings_show_examples():
    for fn in (pp.run, pp.forward, pp.run_with_cache, pp.sweep_senders, pp.activation_patching, pp.path_patch,
               pp.load_model):
        assert ">>>" in fn.__doc__, fn.__name__
    assert "which" in pp.__doc__


def test_type_stubs_match_the_module():
    import ast
    from pathlib import Path

    stubs = ast.parse((Path(pp._pathpatch.__file__).parent / "_pathpatch.pyi").read_text())
    defined = {n.name: n for n in stubs.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    public = {n for n in dir(pp._pathpatch) if not n.startswith("_")}
    assert public == set(defined), (public ^ set(defined))
    for name, node in defined.items():
        if isinstance(node, ast.ClassDef) and not issubclass(getattr(pp._pathpatch, name), BaseException):
            members = {m.name for m in node.body if isinstance(m, ast.FunctionDef)}
            members |= {m.target.id for m in node.body if isinstance(m, ast.AnnAssign)}
            members |= {t.id for m in node.body if isinstance(m, ast.Assign) for t in m.targets}
            actual = {m for m in dir(getattr(pp._pathpatch, name)) if not m.startswith("__")} - {"_pybind11_conduit_v1_"}
            if name == "Split":
                actual = {"NONE", "EDGES", "POSITIONS"}
            members = {m for m in members if not m.startswith("__")}
            missing = members - actual - {"to_pandas", "_repr_svg_"}  # added by the package
            assert not missing, (name, missing)
            assert not (actual - members - {"name", "value"} if name == "Split" else actual - members), (name, actual - members)


def test_long_calls_release_the_gil(ioi, ioi_prompts):
    """A sweep in one thread leaves the interpreter to the others: this thread keeps counting while
    the sweep runs. (Were the GIL held through the C++ work, it could count only while the sweep's
    thread ran Python code.)"""
    import threading

    clean, corrupt, metric, _ = ioi_prompts
    done = threading.Event()
    result = {}

    def sweep():
        try:
            result["z"] = pp.activation_patching(ioi, clean, corrupt, metric, sites=["z", "resid_pre"],
                                                 positions="each")
        finally:
            done.set()

    worker = threading.Thread(target=sweep)
    counted = 0
    worker.start()
    while not done.is_set():
        counted += 1
    worker.join()
    assert "z" in result["z"] and counted > 10000, counted


def test_prompt_files_and_per_example_values(ioi, tmp_path):
    prompts = pp.read_prompts(ioi, ZOO / "ioi-llama" / "eval.jsonl", limit=12)
    assert len(prompts) == 12 and len(prompts.answer) == 12 and prompts.lines[0] == 1
    assert prompts.clean.mask.shape == prompts.corrupted.mask.shape
    metric = pp.Metric.logit_diff(prompts.answer, prompts.wrong)
    s = pp.sweep_senders(ioi, prompts.clean, prompts.corrupted, metric)
    assert s.per_example.shape == (ioi.n_layers, ioi.n_heads, 12) and len(s.clean_rows) == 12
    np.testing.assert_allclose(s.per_example.mean(axis=-1), s.values, rtol=1e-5, atol=1e-5)
    assert abs(np.mean(s.clean_rows) - s.clean) < 1e-4
    # Row r of the sweep is the sweep of prompt r alone (the same experiment on a batch of one).
    one = pp.sweep_senders(ioi, prompts.clean.ids[3:4][:, -int(prompts.clean.mask[3].sum()):],
                           prompts.corrupted.ids[3:4][:, -int(prompts.corrupted.mask[3].sum()):],
                           pp.Metric.logit_diff(prompts.answer[3], prompts.wrong[3]))
    np.testing.assert_allclose(one.values, s.per_example[..., 3], atol=2e-4)
    change = s.relative_to("clean")
    np.testing.assert_allclose(change.per_example, s.per_example - np.array(s.clean_rows), atol=1e-6)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"ids": [1, 2], "corrupt_ids": [1, 2, 3]}\n')
    with pytest.raises(pp.FormatError, match="bad.jsonl:1: the clean prompt has 2 tokens"):
        pp.read_prompts(ioi, bad)
    # One template and order: every row 15 tokens, so a position is one token of every row.
    one = pp.read_prompts(ioi, ZOO / "ioi-llama" / "eval.jsonl", where={"template": "heldout_0", "order": "ABBA"})
    assert len(one) == 42 and one.clean.mask.all()
    assert one.column("s2") == 10 and one.positions["io"] == [2] * 42
    with pytest.raises(pp.InputError, match="position 'io' is column"):
        prompts.column("io")
    with pytest.raises(pp.FormatError, match="no line has template=zzz"):
        pp.read_prompts(ioi, ZOO / "ioi-llama" / "eval.jsonl", where={"template": "zzz"})


def test_no_ops_warn(ioi, ioi_prompts):
    clean, corrupt, metric, (mary, john) = ioi_prompts
    with pytest.warns(pp.PatchingWarning, match="identical"):
        s = pp.sweep_senders(ioi, clean, clean, metric)
    assert any("identical" in w for w in s.warnings)
    with pytest.warns(pp.PatchingWarning, match="prefers the wrong token"):
        pp.sweep_senders(ioi, clean, corrupt, pp.Metric.logit_diff(john, mary))
    with pytest.warns(pp.PatchingWarning, match="has an experiment"):
        pp.sweep_senders(ioi, clean, corrupt, metric, receivers="a0.head0.q")
    with pytest.warns(pp.PatchingWarning, match="'a2 a1 => 1' changes nothing"):
        r = pp.run(ioi, [clean, corrupt], rules=[("a2 a1", 1), ("a1.head2", 1)])
    assert len(r.warnings) == 1
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to say about a sound experiment
        assert pp.sweep_senders(ioi, clean, corrupt, metric).warnings == []
        pp.run(ioi, [clean, corrupt], rules="a1.head2")
        with pytest.raises(pp.PatchingWarning):  # a filter that makes warnings errors is obeyed
            pp.sweep_senders(ioi, clean, clean, metric)


def test_attention_patterns(ioi):
    text = "When Mary and John went to the store, John gave a drink to"
    a = pp.attention(ioi, text, layer=2, head=0)
    _, cache = pp.run_with_cache(ioi, text, names=["pattern2"])
    assert a.axes == ["query", "key"] and np.array_equal(a.values, cache["pattern", 2][0, 0])
    assert a.labels[0][2] == " Mary (2)" and "<svg" in a._repr_svg_()
    padded = ioi.to_batch(["When Mary", text])
    short = pp.attention(ioi, padded, layer=0, head=1, row=0)  # padding left out
    assert short.values.shape == (3, 3) and np.allclose(short.values.sum(axis=1), 1, atol=1e-5)
    with pytest.raises(pp.InputError, match="head 4"):
        pp.attention(ioi, text, layer=2, head=4)
    with pytest.raises(pp.InputError, match="layer 7: the model has layers 0..2"):
        pp.attention(ioi, text, layer=7, head=0)


def test_gradients_by_name_and_site(ioi, ioi_prompts):
    clean, corrupt, metric, (answer, wrong) = ioi_prompts
    g = pp.gradients(ioi, clean, metric, ["z", "resid_pre0"], values=True)
    assert sorted(g.keys()) == sorted([f"blocks.{L}.attn.hook_z" for L in range(ioi.n_layers)] +
                                      ["blocks.0.hook_resid_pre"])
    dz = g["z1"]
    assert dz.shape == g.value_of("z1").shape and dz.dtype == np.float32
    assert not dz.flags.writeable and "z1" in g and len(g) == ioi.n_layers + 1
    # The metric differentiated is the sweep's clean value.
    s = pp.sweep_senders(ioi, clean, corrupt, metric)
    assert g.value == pytest.approx(s.clean, abs=1e-4)
    # A first-order step along the gradient moves the metric as predicted.
    step = 2e-5 * g["resid_pre0"]
    moved = pp.forward(ioi, clean, interventions=[pp.add("resid_pre0", step)])
    rise = float(np.mean(moved.logits[:, -1, answer] - moved.logits[:, -1, wrong])) - g.value
    assert rise == pytest.approx(float(np.sum(g["resid_pre0"] * step)), rel=0.05)


def test_gradients_refuse_what_they_cannot_differentiate(ioi, ioi_prompts):
    clean, corrupt, metric, _ = ioi_prompts
    custom = pp.Metric.custom(lambda logits: logits[:, -1, 0])
    with pytest.raises(pp.InputError, match="cannot differentiate"):
        pp.gradients(ioi, clean, custom, ["z0"])
    with pytest.raises(pp.InputError, match="references"):
        pp.gradients(ioi, clean, pp.Metric.kl(), ["z0"])
    kl = pp.gradients(ioi, clean, pp.Metric.kl(), ["z0"], references=(corrupt, clean))
    assert kl.value > 0
    with pytest.raises(pp.NameError):
        pp.gradients(ioi, clean, metric, ["zz0"])


def test_circuits_from_python(ioi, ioi_prompts, tmp_path):
    clean, corrupt, metric, _ = ioi_prompts
    g = pp.edge_attribution(ioi, clean, corrupt, metric, method="eap")
    assert g.n_edges == 262 and g.scores.shape == (len(g.sources), len(g.destinations))
    name, score, in_circuit = g.edges()[0]
    assert g.score(name) == score and not in_circuit
    g.select_greedy(10)
    assert 0 < g.circuit_edges <= 10 and all(e[2] for e in g.edges(circuit_only=True))
    f = pp.faithfulness(ioi, clean, corrupt, g, metric)
    assert f.edges == g.circuit_edges and f.clean > f.corrupted
    mean = pp.faithfulness(ioi, clean, corrupt, g, metric, ablation="mean")
    assert mean.clean == f.clean and mean.corrupted != f.corrupted and np.isfinite(mean.faithfulness)
    with pytest.raises(pp.InputError, match="ablation 'zero'"):
        pp.faithfulness(ioi, clean, corrupt, g, metric, ablation="zero")
    exact = pp.exact_edge_scores(ioi, clean, corrupt, g, ["a2.h1->logits", "a2.h0->logits"], metric)
    assert len(exact) == 2 and all(x < 0 for x in exact)
    assert "<svg" in g.draw(metric=metric.name)
    g.draw(tmp_path / "c.svg")
    assert (tmp_path / "c.svg").read_text().startswith("<?xml")
    with pytest.raises(pp.NameError, match="no edge named"):
        g.score("a2.h1->a0.h0<q>")


def test_logit_lens_and_direct_logit_attribution(ioi, ioi_prompts):
    clean, _, metric, (mary, john) = ioi_prompts
    lens = pp.logit_lens(ioi, clean)
    assert lens.labels == ["resid_pre0", "resid_pre1", "resid_pre2", "resid_post2"]
    logits = lens.logits(-1)
    assert logits.shape == (4, 1, ioi.d_vocab)
    own = pp.forward(ioi, clean).logits[:, -1]
    np.testing.assert_allclose(logits[-1], own, atol=1e-5)
    scores = lens.score(metric)
    assert scores.shape == (4, 1)
    assert scores[-1, 0] == pytest.approx(own[0, mary] - own[0, john], abs=1e-4)
    assert lens.next_token_probs().shape == (4, clean.shape[1] - 1)

    d = pp.direct_logit_attribution(ioi, clean, mary, john)
    assert d.components[0] == "embed" and "a2.h1" in d.components and d.components[-1] == "m2"
    assert float(d.values.sum()) == pytest.approx(d.total[0], abs=1e-4)
    assert d.total[0] == pytest.approx(own[0, mary] - own[0, john], abs=1e-4)
    grid = d.heads(ioi)
    assert grid.axes == ["layer", "head"] and grid.values[2, 1] == d["a2.h1"]
    with pytest.raises(pp.NameError, match="no part 'a9.h9'"):
        d["a9.h9"]
    with pytest.raises(pp.InputError, match="outside the input"):
        pp.direct_logit_attribution(ioi, clean, mary, john, position=99)


def test_generate_with_and_without_interventions(induction):
    r = pp.repeated_tokens(2, 20, 10000, 30000, seed=5, bos=50256)
    ids = np.asarray(r.batch.ids)[:, : r.first_repeat + 3]
    plain = pp.generate(induction, ids, 6)
    assert [len(t) for t in plain.tokens] == [6, 6]
    want = np.asarray(r.batch.ids)[:, r.first_repeat + 3 : r.first_repeat + 9]
    assert (np.asarray(plain.tokens) == want).mean() > 0.8
    ablated = pp.generate(induction, ids, 6, interventions=[pp.zero("z0")])
    assert (np.asarray(ablated.tokens) == want).mean() < 0.5
    with pytest.raises(pp.InputError, match="context"):
        pp.generate(induction, ids, 100000)


def test_processed_weights_keep_predictions(ioi, ioi_prompts):
    clean, _, metric, (mary, john) = ioi_prompts
    p = ioi.processed()
    a, b = pp.forward(ioi, clean).logits, pp.forward(p, clean).logits
    la = a - np.log(np.exp(a - a.max(-1, keepdims=True)).sum(-1, keepdims=True)) - a.max(-1, keepdims=True)
    lb = b - np.log(np.exp(b - b.max(-1, keepdims=True)).sum(-1, keepdims=True)) - b.max(-1, keepdims=True)
    np.testing.assert_allclose(la, lb, atol=2e-4)
    assert np.abs(a - b).max() > 1e-3  # centred unembedding: the logits themselves moved
    d = pp.direct_logit_attribution(p, clean, mary, john)
    assert d.total[0] == pytest.approx(float(a[0, -1, mary] - a[0, -1, john]), abs=2e-4)
    q = pp.load_model(str(ZOO / "ioi-llama"), process_weights=True)
    np.testing.assert_array_equal(pp.forward(q, clean).logits, b)
