"""How much colour an image tokenizer's decoder can give at all: the free-input test (#31).

    python benchmarks/image_decoder_ceiling.py [--tokenizers image-vq-f8 image-vq-f8-plain] [--crops 6 --steps 300]

For each tokenizer and held-out photo crop, three decodes, each measured against the crop:
- codes: what the tokenizer gives (encode, then decode);
- continuous: the lookup vector decoded without rounding it to a code (`continuous_latents`; what rounding costs
  is the gap to the codes row);
- free input: a latent optimized for the crop with the decoder frozen (Adam on the (z, h, w) input alone, from
  the continuous latent; L1 in RGB plus L1 in CIELAB / 100). No encoder or codebook can do better than this
  decoder does with its best input, so this row is the decoder's ceiling: a decoder that cannot reach the aims
  (CIEDE2000 <= 6, chroma kept) here needs more width, whatever the quantizer does.

Columns: PSNR, mean CIEDE2000, the median over crops of the chroma ratio (`mmgist.metrics.chroma_ratio`: mean
CIELAB chroma of the reconstruction over that of the original; below 1, colours are washed out), and the optimized
row's loss at the start and the end. The crops are the first --crops of the held-out grid
(`image_tokenizer.heldout_crops`, 256x256; --size below that downscales them, which makes them easier).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import tables
import torch
import torch.nn.functional as F
from image_tokenizer import FORMATS, heldout_crops

from mmgist import load_tokenizer
from mmgist.data.images import gather_photos
from mmgist.metrics import chroma_ratio, ciede2000, psnr

FORMAT = {**FORMATS, "loss start": "{:.4f}", "loss end": "{:.4f}", "seconds": "{:.0f}"}
COLUMNS = ("tokenizer", "decode", "PSNR dB", "ΔE2000", "chroma ratio", "loss start", "loss end", "seconds")


def colour_loss(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 in RGB plus L1 in CIELAB / 100 of images (B, 3, H, W) in [0, 1]: a loss that weighs colour as ΔE does."""
    from kornia.color import rgb_to_lab

    lab = (rgb_to_lab(recon.clamp(0, 1)) - rgb_to_lab(target)).abs().mean() / 100
    return F.l1_loss(recon, target) + lab


def free_input(tok, crops: torch.Tensor, steps: int, lr: float) -> tuple[torch.Tensor, float, float]:
    """The decode of the latent (B, z, h, w) that Adam finds for `crops` with the decoder frozen, from the continuous
    latent; with the loss at the start and the end."""
    with torch.no_grad():
        z = tok.continuous_latents(crops)
    z = z.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    tok.requires_grad_(False)
    losses = []
    for _ in range(steps):
        loss = colour_loss(tok.decode_latents(z), crops)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        return tok.decode_latents(z).clamp(0, 1), losses[0], losses[-1]


def row(name: str, decode: str, recon: torch.Tensor, crops: torch.Tensor, **extra) -> dict:
    """One table row: PSNR, CIEDE2000 (means over the crops) and the median chroma ratio of `recon` against `crops`."""
    return {"tokenizer": name, "decode": decode, "PSNR dB": psnr(recon, crops).mean().item(),
            "ΔE2000": ciede2000(recon, crops).mean().item(),
            "chroma ratio": chroma_ratio(recon, crops).median().item(), **extra}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--tokenizers", nargs="+", default=["image-vq-f8", "image-vq-f8-plain"], help="zoo names or folders"
    )
    ap.add_argument("--photos", default="data/photos", help="where gather_photos writes (or wrote) the photos")
    ap.add_argument("--crops", type=int, default=6, help="held-out crops (one per photo, in the grid's order)")
    ap.add_argument("--size", type=int, default=256, help="crop side, pixels (below 256: downscaled; a multiple of 8)")
    ap.add_argument("--steps", type=int, default=300, help="Adam steps on the free input")
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    folder = gather_photos(args.photos).heldout
    crops, kinds = heldout_crops(folder, 1)
    crops = (crops[kinds] if kinds.any() else crops)[: args.crops]
    if args.size != crops.shape[-1]:  # downscaled crops are smoother, so easier: the default keeps 256
        crops = F.interpolate(crops, size=(args.size, args.size), mode="bilinear", antialias=True).clamp(0, 1)
    rows = []
    for where in args.tokenizers:
        name = Path(str(where)).name
        tok = load_tokenizer(where).eval()
        with torch.no_grad():
            rows.append(row(name, "codes", tok.decode(tok.encode(crops)), crops))
            rows.append(row(name, "continuous", tok.decode_latents(tok.continuous_latents(crops)).clamp(0, 1), crops))
        t0 = time.perf_counter()
        recon, start, end = free_input(tok, crops, args.steps, args.lr)
        rows.append(row(name, f"free input ({args.steps} steps)", recon, crops, **{"loss start": start,
                        "loss end": end, "seconds": time.perf_counter() - t0}))  # fmt: skip
        print(tables.table(rows[-3:], COLUMNS, FORMAT), flush=True)
    print(f"\n{len(crops)} held-out photo crops of {args.size}x{args.size} from {folder}; {args.threads} CPU threads\n")
    print(tables.table(rows, COLUMNS, FORMAT))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
