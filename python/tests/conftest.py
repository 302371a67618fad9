"""Shared fixtures: the repository's models, the C++ CLI the bindings are checked against, and a
safetensors reader (Debian ships no Python package for the format; it is a JSON header and raw data)."""
import json
import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

import pathpatch as pp

ROOT = Path(__file__).resolve().parents[2]
ZOO = ROOT / "models" / "zoo"
GOLDEN = ROOT / "tests" / "golden"

CLEAN = "When Mary and John went to the store, John gave a drink to"
CORRUPT = "When Mary and John went to the store, Anna gave a drink to"


def cli_path():
    path = Path(os.environ.get("PATHPATCH_CLI", ROOT / "build" / "pathpatch"))
    assert path.exists(), f"the pathpatch CLI is not built at {path} (set PATHPATCH_CLI)"
    return path


def run_cli(*args):
    """Runs the CLI as this process runs the module: no restart for another BLAS kernel, so both pick
    the same GEMM path and compute the same bits."""
    env = dict(os.environ, PATHPATCH_KEEP_BLAS="1")
    done = subprocess.run([str(cli_path()), *map(str, args)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, f"pathpatch {' '.join(map(str, args))} failed:\n{done.stderr}"
    return done.stdout


def read_safetensors(path):
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = {"F32": "<f4", "I32": "<i4", "U8": "u1"}[info["dtype"]]
        begin, end = info["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + begin : 8 + n + end], dtype=dtype).reshape(info["shape"])
    return out


def read_sweep_csv(path, shape):
    """A sweep's CSV (one row per cell, its value last with 9 significant digits: a float32 exactly)."""
    lines = Path(path).read_text().splitlines()[1:]
    values = np.array([float(line.rsplit(",", 1)[1]) for line in lines], dtype=np.float32)
    return values.reshape(shape)


@pytest.fixture(scope="session")
def ioi():
    return pp.load_model(str(ZOO / "ioi-llama"))


@pytest.fixture(scope="session")
def induction():
    return pp.load_model(str(ZOO / "induction-gpt2"))


@pytest.fixture(scope="session")
def ioi_prompts(ioi):
    clean, corrupt = ioi.to_tokens(CLEAN), ioi.to_tokens(CORRUPT)
    mary, john = ioi.next_token(CLEAN, " Mary"), ioi.next_token(CLEAN, " John")
    return clean, corrupt, pp.Metric.logit_diff(mary, john), (mary, john)
