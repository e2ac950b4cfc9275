"""The README's code blocks marked runnable run as written, from a folder outside the repository."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARK = "<!-- runnable"
BLOCKS = re.findall(rf"{re.escape(MARK)}[^\n]*-->\n```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_the_readme_marks_its_first_program_runnable():
    assert BLOCKS and "photo_paths" in BLOCKS[0]


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_a_runnable_readme_block_runs_as_written(code, tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
