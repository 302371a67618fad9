"""docs/python.md's snippets, run in order in one namespace, and the Python examples, run as a user
runs them: the documents cannot drift from the module."""
import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def python_blocks(markdown):
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


def test_every_snippet_of_the_python_docs_runs(tmp_path, monkeypatch, capsys):
    blocks = python_blocks((ROOT / "docs" / "python.md").read_text())
    assert len(blocks) >= 6
    monkeypatch.chdir(ROOT)
    namespace = {}
    for i, block in enumerate(blocks):
        # Pictures go to the temporary folder, not the repository.
        code = re.sub(r'"(\w+\.svg)"', lambda m: repr(str(tmp_path / m.group(1))), block)
        exec(compile(code, f"docs/python.md block {i + 1}", "exec"), namespace)
    for name in ("resid_pre.svg", "paths.svg", "senders.svg", "circuit.svg"):
        assert (tmp_path / name).stat().st_size > 0, name
    printed = capsys.readouterr().out
    assert "Model llama" in printed


def run_example(name, *args, cwd):
    import pathpatch

    env = dict(os.environ, PYTHONPATH=str(Path(pathpatch.__file__).resolve().parents[1]))
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "python" / name), *args], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_nano_quickstart_prints_what_the_cpp_example_prints(tmp_path):
    py = run_example("nano_quickstart.py", cwd=tmp_path)
    build = Path(os.environ.get("PATHPATCH_BUILD_DIR", ROOT / "build"))
    cpp = subprocess.run([str(build / "examples" / "example_nano_quickstart")], cwd=tmp_path, capture_output=True,
                         text=True, env=dict(os.environ, PATHPATCH_KEEP_BLAS="1"))
    assert cpp.returncode == 0, cpp.stderr
    assert py == cpp.stdout
    assert (tmp_path / "nano_quickstart.svg").stat().st_size > 0


def test_ioi_example_runs_on_the_shipped_prompt_file(tmp_path):
    out = run_example("ioi_path_patching.py", "--prompts", "40", "--out", str(tmp_path), cwd=tmp_path)
    assert "40 prompts, e.g." in out and "share of prompts" in out
    assert "largest effects on the logits: a2.head" in out  # the card's heads of layer 2
    assert (tmp_path / "ioi_senders.svg").stat().st_size > 0


def test_induction_example_runs(tmp_path):
    out = run_example("induction_sweep.py", "--out", str(tmp_path), cwd=tmp_path)
    assert "induction score" in out and (tmp_path / "induction_z.svg").stat().st_size > 0
