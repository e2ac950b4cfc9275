"""A short measured sweep of image-tokenizer choices: each variant trained briefly, measured on held-out photos.

    python benchmarks/image_tokenizer_sweep.py --steps 100 --jobs 2 [--variants v2 no-colour-aug ...]

Every variant starts from the v2 recipe (64px crops, batch 16, colour augmentation, L1 + local colour
+ edge loss, widths 48-96-128-192, 8-d cosine codes) and changes one thing. Runs go through
`mmgist train-tokenizer` with one CPU thread each, `--jobs` at a time, into --out (a finished run
is reused). Held-out figures: `--max-per-photo` 256px crops of each held-out photo. Short runs rank
choices by how fast they learn, not where they end: read the table as a guide, not a verdict. The code
space (`mmgist.tokenizers.code_space` on 16 held-out crops): live dimensions of the lookup and the R² of each
patch's a* and b* from its lookup vector (#31: v2 keeps 3 and a* 0.24).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from image_tokenizer import heldout_crops, measure, table

from mmgist import load_tokenizer
from mmgist.data.images import gather_photos
from mmgist.tokenizers.code_space import code_space

VARIANTS: dict[str, list[str]] = {
    "v2": [],
    "no colour aug": ["--augment", "scale"],
    "v1 loss (MSE)": ["--loss", "mse"],
    "code dim 32": ["--code-dim", "32"],
    "wider 64-128-192-256": ["--channels", "64,128,192,256"],
    "crop 96, batch 8": ["--crop-size", "96", "--batch-size", "8"],
    "plain VQ": ["--quantizer", "plain-vq"],
    "FSQ 8-8-8-8": ["--quantizer", "fsq"],
    "no augmentation": ["--augment", "none"],
    # v3 (#31): a code space that stays alive
    "euclidean 64": ["--lookup", "euclidean", "--code-dim", "64"],  # the full latent: no projection
    "euclidean 8 + latent": ["--lookup", "euclidean", "--latent-weight", "1"],
    "euclidean 16 + latent": ["--lookup", "euclidean", "--code-dim", "16", "--latent-weight", "1"],
    "euclidean 8 + latent + LAB": ["--lookup", "euclidean", "--latent-weight", "1", "--lab-weight", "1"],
}


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


def train(name: str, args: argparse.Namespace, train_dir: Path) -> subprocess.Popen | None:
    out = Path(args.out) / slug(name)
    if (out / "config.json").is_file():
        return None
    cmd = [
        sys.executable,
        "-m",
        "mmgist.cli",
        "train-tokenizer",
        "image",
        "--data",
        str(train_dir),
        "--steps",
        str(args.steps),
        "--lr",
        str(args.lr),
        "--out",
        str(out),
        "--crop-size",
        str(args.crop_size),
        *VARIANTS[name],
    ]  # fmt: skip  (a variant's own --crop-size comes later and wins)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = open(Path(args.out) / f"{slug(name)}.log", "w")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="NAME")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--lr", type=float, default=8e-4)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--crop-size", type=int, default=64, help="crop size of every variant but the crop variant")
    ap.add_argument("--photos", default="data/photos")
    ap.add_argument("--out", default="runs/sweep")
    ap.add_argument("--max-per-photo", type=int, default=4)
    args = ap.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    photos = gather_photos(args.photos)
    pending, running = list(args.variants), []
    while pending or running:
        running = [p for p in running if p.poll() is None]
        while pending and len(running) < args.jobs:
            proc = train(pending.pop(0), args, photos.train)
            if proc is not None:
                running.append(proc)
        time.sleep(5)
    torch.set_num_threads(2)
    crops, kinds = heldout_crops(photos.heldout, args.max_per_photo)
    crops = crops[kinds]  # the photographs only
    rows = []
    for name in args.variants:
        folder = Path(args.out) / slug(name)
        if not (folder / "config.json").is_file():
            print(f"{name}: training failed, see {folder}.log", file=sys.stderr)
            continue
        info = json.loads((folder / "training.json").read_text())
        (quality_row,), code_row = measure(
            name, load_tokenizer(folder), crops, torch.ones(len(crops), dtype=torch.bool)
        )
        keep = ("PSNR dB", "SSIM", "ΔE2000", "chroma ratio", "grey cast /255")
        space = code_space(load_tokenizer(folder), crops[:16])
        rows.append(
            {
                "variant": name,
                **{k: quality_row[k] for k in keep},
                **{k: code_row[k] for k in ("usage", "perplexity")},
                "live dims": space.live_dims,
                "R² a*": space.r2["a*"],
                "R² b*": space.r2["b*"],
                "s/step": info["wall_seconds_this_run"] / args.steps,
            }
        )
    print(f"{args.steps} steps each, 1 CPU thread per run; {len(crops)} crops of 256x256 of held-out photographs\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
