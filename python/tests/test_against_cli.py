"""The bindings compute what the C++ CLI computes, bit for bit: same engine, no copy that changes a bit."""
import numpy as np
import pytest

import pathpatch as pp
from conftest import CLEAN, CORRUPT, GOLDEN, ZOO, read_safetensors, read_sweep_csv, run_cli

ROWS = [[1, 5, 9, 2, 7, 3], [4, 4, 8, 1, 0, 6]]


@pytest.mark.parametrize("folder", ["gpt2", "llama-gqa", "pythia", "gemma2", "gpt-neo"])
def test_every_activation_equals_the_cli_dump(folder, tmp_path):
    model = pp.load_model(str(GOLDEN / folder))
    out = tmp_path / "acts.safetensors"
    run_cli("forward", "--model", GOLDEN / folder, "--ids", ",".join(map(str, ROWS[0])), "--ids",
            ",".join(map(str, ROWS[1])), "--dump", out)
    ref = read_safetensors(out)
    logits, cache = pp.run_with_cache(model, np.array(ROWS), names="*")
    assert ref["input_ids"].dtype == np.int32 and np.array_equal(ref["input_ids"], np.array(ROWS))
    assert logits.dtype == np.float32 and np.array_equal(logits, ref["logits"])
    names = sorted(n for n in ref if n not in ("logits", "input_ids", "attention_mask"))
    assert names == sorted(cache)
    assert names == sorted(model.activation_names)
    for name in names:
        assert np.array_equal(cache[name], ref[name]), name


def ioi_cli(command, out, *options):
    """The CLI on the zoo's IOI model with the prompts of the fixture `ioi_prompts`."""
    run_cli(command, "--model", ZOO / "ioi-llama", "--clean", CLEAN, "--corrupt", CORRUPT, "--answer", " Mary",
            "--wrong", " John", *options, "--out", out)


def test_sender_sweep_equals_the_cli(ioi, ioi_prompts, tmp_path):
    clean, corrupt, metric, _ = ioi_prompts
    out = tmp_path / "senders.csv"
    ioi_cli("paths", out, "--include-mlps")
    s = pp.sweep_senders(ioi, clean, corrupt, metric, include_mlps=True)
    assert s.axes == ["layer", "head"] and s.values.shape == (ioi.n_layers, ioi.n_heads + 1)
    assert np.array_equal(s.values, read_sweep_csv(out, s.values.shape), equal_nan=True)


def test_receiver_sweep_equals_the_cli(ioi, ioi_prompts, tmp_path):
    clean, corrupt, metric, _ = ioi_prompts
    out = tmp_path / "receivers.csv"
    ioi_cli("paths", out, "--senders", "0.1", "--receiver-kind", "q")
    s = pp.sweep_receivers(ioi, clean, corrupt, metric, senders="a0.head1", kind="q")
    assert np.isnan(s.values[0]).all() and not np.isnan(s.values[1:]).any()  # layer 0 cannot receive from 0.1
    assert np.array_equal(s.values, read_sweep_csv(out, s.values.shape), equal_nan=True)


def test_sweeps_at_a_receiver_position_equal_the_cli(ioi, ioi_prompts, tmp_path):
    clean, corrupt, metric, _ = ioi_prompts
    out = tmp_path / "receivers.csv"
    ioi_cli("paths", out, "--senders", "0.1", "--receiver-kind", "q@-1")
    s = pp.sweep_receivers(ioi, clean, corrupt, metric, senders="a0.head1", kind="q", positions=[-1])
    assert np.array_equal(s.values, read_sweep_csv(out, s.values.shape), equal_nan=True)
    out = tmp_path / "senders.csv"
    ioi_cli("paths", out, "--receiver", "q:2.0@-1", "--receiver", "q:2.1@-1")
    s = pp.sweep_senders(ioi, clean, corrupt, metric, receivers=[("q", 2, 0, [-1]), ("q", 2, 1, [-1])])
    assert np.array_equal(s.values, read_sweep_csv(out, s.values.shape), equal_nan=True)
    out = tmp_path / "senders_end.csv"
    ioi_cli("paths", out, "--sender-positions", "-1", "--include-mlps")
    s = pp.sweep_senders(ioi, clean, corrupt, metric, sender_positions=[-1], include_mlps=True)
    assert np.array_equal(s.values, read_sweep_csv(out, s.values.shape), equal_nan=True)


def test_activation_patching_equals_the_cli(ioi, ioi_prompts, tmp_path):
    clean, corrupt, metric, _ = ioi_prompts
    out = tmp_path / "z.csv"
    ioi_cli("patch", out, "--sites", "z", "--positions", "each")
    sweeps = pp.activation_patching(ioi, clean, corrupt, metric, sites="z", positions="each")
    z = sweeps["z"]
    assert z.axes == ["layer", "position", "head"]
    assert z.values.shape == (ioi.n_layers, clean.shape[1], ioi.n_heads)
    assert np.array_equal(z.values, read_sweep_csv(out, z.values.shape))


def test_the_demo_circuit_draws_what_its_legend_says(tmp_path):
    """Every head whose effect passes the legend's threshold is drawn, and nothing else (the
    demo's circuit once drew only the strongest head, hiding one within 0.3% of it)."""
    import json
    import re

    run_cli("demo", "--out", tmp_path)
    svg = (tmp_path / "circuit.svg").read_text()
    threshold = float(re.search(r"shown: \|effect\| &gt;= ([0-9.]+)", svg).group(1))
    drawn = set(re.findall(r"<title>(a\d\.head\d)&#45;&gt;([\w.]+)</title>", svg))
    expected = set()
    for name, receiver in (("senders-to-logits.json", "logits"), ("senders-to-keys.json", None)):
        sweep = json.loads((tmp_path / name).read_text())
        if receiver is None:  # "senders -> keys of head L.H"
            layer, head = re.search(r"(\d+)\.(\d+)$", sweep["title"]).groups()
            receiver = f"a{layer}.head{head}.k"
        for layer, row in enumerate(sweep["values"]):
            for head, value in enumerate(row):
                if value is not None and abs(value - sweep["clean"]) >= threshold - 0.005:  # the legend rounds
                    expected.add((f"a{layer}.head{head}", receiver))
    assert drawn == expected and len(drawn) >= 3


def test_npy_dump_holds_the_same_bits_and_integer_ids(tmp_path):
    model = pp.load_model(str(GOLDEN / "llama-gqa"))
    out = tmp_path / "acts"
    run_cli("forward", "--model", GOLDEN / "llama-gqa", "--ids", "1,5,9,2", "--ids", "4,8", "--dump", f"{out}/",
            "--names", "blocks.1.*")
    ids = np.load(out / "input_ids.npy")
    mask = np.load(out / "attention_mask.npy")
    assert ids.dtype == np.int32 and ids.tolist()[0] == [1, 5, 9, 2] and ids[1, 2:].tolist() == [4, 8]
    assert mask.dtype == np.uint8 and mask.tolist() == [[1, 1, 1, 1], [0, 0, 1, 1]]
    _, cache = pp.run_with_cache(model, pp.Batch(ids, mask), names="blocks.1.*")
    names = sorted(p.stem for p in out.glob("blocks.1.*.npy"))
    assert names == sorted(cache)
    for name in names:
        assert np.array_equal(np.load(out / f"{name}.npy"), cache[name]), name
    st = tmp_path / "acts.safetensors"  # safetensors: the ids as I32 too
    run_cli("forward", "--model", GOLDEN / "llama-gqa", "--ids", "1,5,9,2", "--dump", st, "--names", "logits")
    import json
    import struct

    data = st.read_bytes()
    header = json.loads(data[8 : 8 + struct.unpack("<Q", data[:8])[0]])
    assert header["input_ids"]["dtype"] == "I32" and header["attention_mask"]["dtype"] == "U8"


def test_attribution_patching_equals_the_cli(ioi, ioi_prompts, tmp_path):
    clean, corrupt, metric, _ = ioi_prompts
    out = tmp_path / "z.csv"
    ioi_cli("attribute", out, "--sites", "z", "--positions", "each")
    z = pp.attribution_patching(ioi, clean, corrupt, metric, sites="z", positions="each")["z"]
    exact = pp.activation_patching(ioi, clean, corrupt, metric, sites="z", positions="each")["z"]
    assert z.axes == exact.axes and z.labels == exact.labels and z.values.shape == exact.values.shape
    assert np.array_equal(z.values, read_sweep_csv(out, z.values.shape))


def test_edge_attribution_and_circuit_equal_the_cli(ioi, ioi_prompts, tmp_path):
    clean, corrupt, metric, _ = ioi_prompts
    out = tmp_path / "circuit.json"
    run_cli("circuit", "--model", ZOO / "ioi-llama", "--clean", CLEAN, "--corrupt", CORRUPT, "--answer", " Mary",
            "--wrong", " John", "--top", "30", "--json", out)
    g = pp.edge_attribution(ioi, clean, corrupt, metric)
    g.select_top(30)
    assert g.to_json() == out.read_text()
    back = pp.EdgeGraph.from_json(ioi, out.read_text())
    assert back.circuit_edges == g.circuit_edges and np.array_equal(back.scores, g.scores)
