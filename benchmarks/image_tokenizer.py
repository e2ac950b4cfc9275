"""Image tokenizer benchmark: the shipped tokenizer against a plain-VQ baseline, on held-out photographs.

    python benchmarks/image_tokenizer.py [--shipped image-vq-f8] [--baseline runs/image-vq-f8-plain]
                                         [--update-card tokenizers/image-vq-f8/README.md]

Every row is measured in this one run, on photographs never used in training (mmgist.datasets.HELDOUT):
quality on 256x256 crops (a non-overlapping grid over each held-out photo), codebook usage and
perplexity over every code of the full-size held-out photos, and CPU encode/decode speed on the
crops (best of 3). The baseline is the same encoder and decoder with a plain nearest-neighbour
codebook, trained on the same data for the same steps:

    mmgist train-tokenizer image --data data/photos/train --preset f8 --quantizer plain-vq \
        --steps 2600 --lr 6e-4 --out runs/image-vq-f8-plain
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import torch
from timing import best_of

from mmgist import load_tokenizer
from mmgist.datasets import image_files, split_photos
from mmgist.io import image_to_tensor, load_image
from mmgist.metrics import CodeUsage, psnr, ssim

CROP = 256


def heldout_crops(folder: Path) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(N, 3, 256, 256) grid crops, and the full-size photos (each (3, H, W))."""
    photos = [image_to_tensor(load_image(p)) for p in image_files(folder)]
    crops = [
        im[:, y : y + CROP, x : x + CROP]
        for im in photos
        for y in range(0, im.shape[1] - CROP + 1, CROP)
        for x in range(0, im.shape[2] - CROP + 1, CROP)
    ]
    return torch.stack(crops), photos


def measure(name: str, tok, crops: torch.Tensor, photos: list[torch.Tensor]) -> dict:
    codes = tok.encode(crops)
    recon = tok.decode(codes)
    usage = CodeUsage(tok.codebook_size)
    for im in photos:
        usage.update(tok.encode(im, fit="crop"))
    n = len(crops)
    return {
        "tokenizer": name,
        "quantizer": tok.config.quantizer,
        "K": tok.codebook_size,
        "tokens/256²": tok.tokens_per_image(CROP, CROP),
        "PSNR dB": psnr(recon, crops).mean().item(),
        "SSIM": ssim(recon, crops).mean().item(),
        "usage": usage.usage,
        "perplexity": usage.perplexity,
        "encode img/s": n / best_of(lambda: tok.encode(crops)),
        "decode img/s": n / best_of(lambda: tok.decode(codes)),
    }


def table(rows: list[dict]) -> str:
    fmt = {
        "PSNR dB": "{:.2f}",
        "SSIM": "{:.4f}",
        "usage": "{:.3f}",
        "perplexity": "{:.0f}",
        "encode img/s": "{:.1f}",
        "decode img/s": "{:.1f}",
    }
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(fmt.get(c, "{}").format(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shipped", default="image-vq-f8", help="zoo name or folder")
    ap.add_argument("--baseline", default="runs/image-vq-f8-plain", help="folder of the plain-VQ baseline")
    ap.add_argument("--heldout", help="folder of held-out photos (default: the bundled held-out set)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--update-card", help="rewrite the measured table between the markers in this README")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    folder = Path(args.heldout) if args.heldout else split_photos(Path(tempfile.mkdtemp()))[1]
    crops, photos = heldout_crops(folder)
    rows, n_codes = [], 0
    for label, where in (("shipped", args.shipped), ("plain-VQ baseline", args.baseline)):
        if label != "shipped" and not Path(where).is_dir():
            print(
                f"baseline {where!r} not found; train it with the command in this script's docstring", file=sys.stderr
            )
            continue
        tok = load_tokenizer(where).eval()
        n_codes = n_codes or sum(tok.tokens_per_image(*im.shape[1:], fit="crop") for im in photos)
        rows.append(measure(f"{label} ({Path(str(where)).name})", tok, crops, photos))
    head = (
        f"held-out: {len(photos)} photos ({', '.join(p.stem for p in image_files(folder))}), {len(crops)} crops "
        f"of {CROP}x{CROP}; usage over {n_codes} codes of the full-size photos; {args.threads} CPU threads"
    )
    out = head + "\n\n" + table(rows)
    if len(rows) == 2:
        out += f"\n\nPSNR gain over the baseline: {rows[0]['PSNR dB'] - rows[1]['PSNR dB']:+.2f} dB"
    print(out)
    if args.update_card:
        card = Path(args.update_card)
        text = card.read_text(encoding="utf-8")
        block = (
            f"<!-- benchmark:start -->\n```\n$ python benchmarks/image_tokenizer.py\n{out}\n```\n<!-- benchmark:end -->"
        )
        new, n = re.subn(r"<!-- benchmark:start -->.*?<!-- benchmark:end -->", block, text, flags=re.S)
        if n != 1:
            raise SystemExit(f"{card} has no <!-- benchmark:start --> ... <!-- benchmark:end --> block")
        card.write_text(new, encoding="utf-8")
        print(f"updated {card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
