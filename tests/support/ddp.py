"""Launch tests/support/ddp_worker.py under torchrun with 2 CPU processes; returns each rank's (world size,
weights hash)."""

import os
import subprocess
import sys
from pathlib import Path


def run_ddp(mode: str, data: Path, out: Path) -> list[list[str]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(__file__).parent / "ddp_worker.py"), mode, str(data), str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [(out / f"rank{r}.txt").read_text().split() for r in (0, 1)]
