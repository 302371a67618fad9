"""The Python module against the C++ library, same machine, same run.

  1. Sweeps (a) and (b) of bench_sweeps (144 sender heads -> the logits on a GPT-2-small-shaped
     model, batch 8 x 16; (b) recomputes the MLPs on the path): the best of N runs of the same
     call from C++ (build/bench/bench_sweeps --repeat N) and from Python, alternated in rounds.
     Aim: Python within 5% of C++.
  2. The nano quick start: examples/python/nano_quickstart.py against build/examples/
     example_nano_quickstart, whole processes (start, load, run, draw), best of N each.
  3. What a Python predicate costs per node visit: a run whose every step is in a warm cache
     (so only the predicates and the tracer work), with Python predicates against the same
     experiment as path rules (the tracer alone).

    PYTHONPATH=build/python /usr/bin/python3 bench/bench_python.py [--repeat 5] [--rounds 3]
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import pathpatch as pp

ROOT = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("PATHPATCH_BUILD_DIR", ROOT / "build"))


def best_of(n, fn):
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def cpp_sweep_seconds(case, repeat):
    env = dict(os.environ, PP_BENCH_NO_TORCH="1")
    out = subprocess.run([str(BUILD / "bench" / "bench_sweeps"), "--only", case, "--repeat", str(repeat)],
                         capture_output=True, text=True, env=env, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith(f"({case})"))
    return float(line[36:].split()[0])  # the name is printed in 36 columns, then the seconds


def blas_line():
    out = subprocess.run([str(BUILD / "pathpatch"), "info"], capture_output=True, text=True).stdout
    keep = ("kernel", "threads", "gemm")
    return ", ".join(" ".join(l.split()) for l in out.splitlines() if l.startswith(keep))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"pathpatch from Python vs C++ ({blas_line()})")

    # The benchmark's model, as bench_sweeps builds it (seed 1), written as a checkpoint folder.
    folder = subprocess.run([str(BUILD / "bench" / "bench_sweeps"), "--export-model"], capture_output=True,
                            text=True, check=True).stdout.strip()
    model = pp.load_model(folder)
    B, T, V = 8, 16, model.d_vocab
    rows = np.array([[(b * 7919 + t * 104729) % V for t in range(T)] for b in range(B)])
    bad = rows.copy()
    bad[:, T // 2] = (bad[:, T // 2] + 1) % V
    metric = pp.Metric.logit_diff([100] * B, [200] * B)

    cases = {
        "a": ("(a) 144 senders -> logits, MLPs frozen", lambda: pp.sweep_senders(model, rows, bad, metric)),
        "b": ("(b) 144 senders -> logits, MLPs on path",
              lambda: pp.sweep_senders(model, rows, bad, metric, mlps_on_path=True)),
    }
    # Rounds alternate the two sides, so that a slow spell of a shared machine hits both; each side's
    # number is its best run over all rounds.
    print(f"\n{'sweep':44} {'C++ s':>8} {'Python s':>9} {'overhead':>9}   (best of {args.rounds} x {args.repeat})")
    for key, (name, call) in cases.items():
        cpp = py = float("inf")
        for _ in range(args.rounds):
            cpp = min(cpp, cpp_sweep_seconds(key, args.repeat))
            py = min(py, best_of(args.repeat, call))
        print(f"{name:44} {cpp:8.3f} {py:9.3f} {100 * (py / cpp - 1):+8.1f}%")

    # The nano quick start, whole processes.
    env = dict(os.environ, PYTHONPATH=str(Path(pp.__file__).resolve().parents[1]), PATHPATCH_KEEP_BLAS="1")
    tmp = Path("/tmp/pathpatch-bench-python")
    tmp.mkdir(exist_ok=True)
    cpp_cmd = [str(BUILD / "examples" / "example_nano_quickstart")]
    py_cmd = [sys.executable, str(ROOT / "examples" / "python" / "nano_quickstart.py")]
    run = lambda cmd: subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, check=True)  # noqa: E731
    cpp = best_of(args.repeat, lambda: run(cpp_cmd))
    py = best_of(args.repeat, lambda: run(py_cmd))
    start = best_of(args.repeat, lambda: run([sys.executable, "-c", "import pathpatch"]))
    print(f"\nnano quick start, whole process: C++ {cpp:.3f} s, Python {py:.3f} s "
          f"(of which starting Python and importing pathpatch and numpy: {start:.3f} s)")

    # Predicates: every head of every layer split, so the trace visits many nodes; values cached.
    ioi = pp.load_model(str(ROOT / "models/zoo/ioi-llama"))
    clean = ioi.to_tokens("When Mary and John went to the store, John gave a drink to")
    corrupt = ioi.to_tokens("When Mary and John went to the store, Anna gave a drink to")
    def branch(path):  # split every residual sum (aL, fL) and every attention (aL.head) into its edges
        last = path[-1]
        return pp.Split.EDGES if "." not in last[1:] and last[0] in "af" or last.endswith(".head") and last[0] == "a" \
            else pp.Split.NONE

    which = lambda path: 1 if "a1.head2" in path else 0  # noqa: E731
    cache = pp.Cache()
    pp.run(ioi, [clean, corrupt], which, branch, cache=cache, logits=False)
    visits = pp.run(ioi, [clean, corrupt], which, branch, cache=cache, logits=False).stats["node_visits"]
    python_s = best_of(args.repeat, lambda: pp.run(ioi, [clean, corrupt], which, branch, cache=cache, logits=False))
    pp.run(ioi, [clean, corrupt], rules="a1.head2", cache=cache, logits=False)
    rules_s = best_of(args.repeat, lambda: pp.run(ioi, [clean, corrupt], rules="a1.head2", cache=cache, logits=False))
    print(f"\nPython predicates: {visits} node visits in {1e3 * python_s:.2f} ms with every value cached: "
          f"{1e6 * python_s / visits:.2f} us per visit (two calls each at most: branch, and which at the embeddings); "
          f"the same experiment as path rules: {1e3 * rules_s:.2f} ms")


if __name__ == "__main__":
    main()
