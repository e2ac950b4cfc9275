"""Saves killed at random points never lose the previous version, and never leave a loadable mix."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "support" / "kill_saves.py"
ROOT = Path(__file__).parents[1]


def kill_saves(count: int, *kinds: str, seed: int = 0) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--count", str(count), "--seed", str(seed), *kinds],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_killed_saves_keep_one_complete_version():
    results = kill_saves(12, "tokenizer", "vocab", "model", "gist")
    assert [r["kind"] for r in results] == ["tokenizer", "vocab", "model", "gist"]
    assert all(r["old"] + r["new"] == 12 for r in results)
    assert sum(r["old"] for r in results) > 0  # some kills did land mid-save


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_many_killed_saves_keep_one_complete_version(seed):
    for r in kill_saves(200, "tokenizer", "vocab", "model", "gist", seed=seed):
        assert r["old"] > 0 and r["new"] > 0, r
