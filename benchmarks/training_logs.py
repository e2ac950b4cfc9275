"""Training runs side by side, from the shared loop's logs: chosen metrics at chosen steps, one row per run and step.

    python benchmarks/training_logs.py runs/a/.stage1-run runs/b/.stage1-run --steps 50 100 200 \
        --metrics psnr live_dims r2_a r2_b eig_0 codes_in_batch

Every trainable part logs through `mmgist.train.fit` into RUN/log.jsonl (the running mean of each metric over
the last `log_every` steps); a run in progress is read as far as it got. A step that a run has not logged is
left out of its rows. With no --steps, each run's last logged step.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import tables


def read_log(run: Path) -> dict[int, dict]:
    """step -> logged metrics, from RUN/log.jsonl (RUN may also be the log file itself)."""
    path = run / "log.jsonl" if run.is_dir() else run
    if not path.is_file():
        raise SystemExit(f"no training log at {path}")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {int(r["step"]): r for r in rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="run folders (holding log.jsonl) or log files")
    ap.add_argument("--steps", nargs="*", type=int, default=[], help="steps to show (default: each run's last)")
    ap.add_argument("--metrics", nargs="+", default=["loss"], help="logged metric names")
    ap.add_argument("--names", nargs="*", help="a label per run (default: the run's path)")
    args = ap.parse_args(argv)
    names = args.names or args.runs
    if len(names) != len(args.runs):
        ap.error(f"--names gives {len(names)} labels for {len(args.runs)} runs")
    rows = []
    for name, run in zip(names, args.runs):
        log = read_log(Path(run))
        for step in args.steps or [max(log)]:
            if step in log:
                rows.append({"run": name, "step": step, **{m: log[step].get(m) for m in args.metrics}})
    formats = {m: "{:.4g}" for m in args.metrics}
    print(tables.table(rows, ("run", "step", *args.metrics), formats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
