"""Run the benchmark notebooks and keep what they show: executed copies, tables and plots, in out/notebooks/.

    python notebooks/execute.py                  # every notebook, quick (MMGIST_NOTEBOOK_QUICK=1): minutes
    python notebooks/execute.py --full gist      # the measurement the notebook was written for: hours on 2 cores

The committed notebooks hold no outputs (the tests check this); open the executed copies with any notebook
viewer (VS Code, or `pip install notebook && jupyter notebook out/notebooks`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="*", help="notebooks whose file name starts with these (default: all)")
    ap.add_argument("--full", action="store_true", help="the full measurement, not the quick setting")
    ap.add_argument("--out", default="out/notebooks", help="where the executed copies go")
    ap.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: none)")
    args = ap.parse_args(argv)
    import nbformat
    from nbclient import NotebookClient

    paths = [p for p in sorted(HERE.glob("*.ipynb")) if not args.names or p.name.startswith(tuple(args.names))]
    if not paths:
        ap.error(f"no notebook in {HERE} starts with {args.names}")
    os.environ["MMGIST_NOTEBOOK_QUICK"] = "0" if args.full else "1"
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # the plots go into the copies
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in paths:
        t0 = time.perf_counter()
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(HERE)}})  # fmt: skip
        client.execute()
        nbformat.write(nb, out / path.name)
        print(f"wrote {out / path.name} ({'full' if args.full else 'quick'}, {time.perf_counter() - t0:.0f} s)",
              flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
