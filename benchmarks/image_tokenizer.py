"""Image tokenizer benchmark on held-out photographs: image-vq-f8 (v2), the plain-VQ baseline, v1, and WebP.

    make data                                   # once: installs the photo packages, gathers data/photos
    python benchmarks/image_tokenizer.py [--tokenizers image-vq-f8 image-vq-f8-plain image-vq-f8-v1]
                                         [--side-by-side tokenizers/image-vq-f8/heldout.png]
                                         [--update-card tokenizers/image-vq-f8/README.md]
                                         [--hf /models/Janus-Pro-1B [--hf /models/Emu3-Chat-hf ...]]

Every row is measured in this one run, on the held-out photos of `mmgist.data.images.gather_photos`
(never trained on). Quality on 256x256 crops (a non-overlapping grid over each photo): PSNR, SSIM,
mean CIEDE2000, median chroma ratio (reconstruction / original; < 1 is washed out), the grey cast of
greyscale versions of the crops (mean |R-G|+|G-B|, in 1/255), and the share of error in the outer 8
pixels' ring relative to the interior (border/inner MSE). Codebook usage and perplexity over all
codes of the crops, next to the usage a uniform distribution would reach with as many draws. "1 vs N
threads": the share of codes that change when the crops are encoded with 1 CPU thread instead of
--threads (float rounding differs with the thread count; a code near a tie can flip), and the PSNR
between the two decodes. Encode and decode speed on 16 crops as one batch (best of 3), and encoding
the same crops one at a time. WebP is encoded per crop at the highest quality whose file fits the
tokenizer's bits per pixel (log2(K) bits per code).

`--hf PATH` adds rows for the VQ-VAE of a pretrained transformers model on your disk (hf-image: Emu3,
Janus; Chameleon's has no decoder and is skipped with a note), at the crops' own size (image_size=0).
"""

from __future__ import annotations

import argparse
import io
import math
import sys
from pathlib import Path

import tables
import torch
from timing import best_of

from mmgist import load_tokenizer
from mmgist.data.images import HELDOUT_PHOTOGRAPHS, gather_photos, image_files
from mmgist.io import image_to_tensor, load_image, tensor_to_image
from mmgist.metrics import HUES, CodeUsage, chroma_ratio, ciede2000, grey_cast, hue_fidelity, psnr, ssim
from mmgist.tokenizers.code_space import code_space

CROP = 256
BORDER = 8  # the ring whose error is compared with the interior's
SPEED_CROPS = 16
DEFAULT_TOKENIZERS = ("image-vq-f8", "image-vq-f8-plain", "image-vq-f8-v1")


def heldout_crops(folder: Path, max_per_photo: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, 256, 256): a non-overlapping grid of crops over every image in `folder`; (N,) True for photographs."""
    crops, is_photo = [], []
    for path in image_files(folder):
        im = image_to_tensor(load_image(path))
        grid = [
            im[:, y : y + CROP, x : x + CROP]
            for y in range(0, im.shape[1] - CROP + 1, CROP)
            for x in range(0, im.shape[2] - CROP + 1, CROP)
        ]
        if max_per_photo:  # evenly spaced over the grid
            grid = [grid[round(i * len(grid) / max_per_photo)] for i in range(min(max_per_photo, len(grid)))]
        crops += grid
        is_photo += [path.stem in HELDOUT_PHOTOGRAPHS] * len(grid)
    return torch.stack(crops), torch.tensor(is_photo)


def to_grey(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> the same, each pixel's ITU-R 601 luma in all three channels."""
    y = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    return y[:, None].expand(-1, 3, -1, -1).contiguous()


def border_ratio(recon: torch.Tensor, crops: torch.Tensor) -> float:
    """MSE in the outer BORDER-pixel ring over the MSE inside it."""
    err = (recon - crops).pow(2).mean(1)  # (B, H, W)
    inner = torch.zeros_like(err[0], dtype=torch.bool)
    inner[BORDER:-BORDER, BORDER:-BORDER] = True
    return (err[:, ~inner].mean() / err[:, inner].mean()).item()


def quality(name: str, recon: torch.Tensor, crops: torch.Tensor, grey_recon: torch.Tensor, kinds: torch.Tensor) -> list:
    """Quality rows of one method: on the photographs, then on the illustrations (`kinds`: True = photograph)."""
    rows = []
    for kind, mask in (("photos", kinds), ("illustrations", ~kinds)):
        if mask.any():
            rows.append(
                {**_quality(f"{name} · {kind}", recon[mask], crops[mask], grey_recon[mask]), "crops": int(mask.sum())}
            )
    return rows


def _quality(name: str, recon: torch.Tensor, crops: torch.Tensor, grey_recon: torch.Tensor) -> dict:
    return {
        "method": name,
        "PSNR dB": psnr(recon, crops).mean().item(),
        "SSIM": ssim(recon, crops).mean().item(),
        "ΔE2000": ciede2000(recon, crops).mean().item(),
        "chroma ratio": chroma_ratio(recon, crops).median().item(),
        "grey cast /255": grey_cast(grey_recon).mean().item() * 255,
        "border/inner": border_ratio(recon, crops),
    }


def measure(name: str, tok, crops: torch.Tensor, kinds: torch.Tensor) -> tuple[list[dict], dict]:
    """(quality rows per kind of image, one row of code statistics and speed)."""
    codes = tok.encode(crops)
    rows = quality(name, tok.decode(codes), crops, tok.decode(tok.encode(to_grey(crops))), kinds)
    changed, agree_db = thread_agreement(tok, crops, codes)
    usage = CodeUsage(tok.codebook_size)
    usage.update(codes)
    draws, K = codes.numel(), tok.codebook_size
    sample = crops[:SPEED_CROPS]
    sample_codes = codes[:SPEED_CROPS]
    bpp = tok.tokens_per_image(CROP, CROP) * math.log2(K) / CROP**2
    return [{**r, "bpp": bpp} for r in rows], {
        "method": name,
        "usage": usage.usage,
        "uniform usage": 1 - (1 - 1 / K) ** draws,
        "perplexity": usage.perplexity,
        "1 vs N threads: codes changed": changed,
        "decodes agree dB": agree_db,
        "encode img/s": len(sample) / best_of(lambda: tok.encode(sample)),
        "encode img/s, one at a time": len(sample) / best_of(lambda: [tok.encode(c) for c in sample]),
        "decode img/s": len(sample) / best_of(lambda: tok.decode(sample_codes)),
    }


# flat patches: pure sRGB hues at full and half saturation, and mid-grey (what a tint shows on)
FLAT = {"red": (1, 0, 0), "orange": (1, 0.5, 0), "yellow": (1, 1, 0), "green": (0, 0.7, 0), "cyan": (0, 1, 1),
        "blue": (0, 0, 1), "purple": (0.5, 0, 0.8), "magenta": (1, 0, 1), "mid-grey": (0.5, 0.5, 0.5)}  # fmt: skip


def colour_rows(name: str, tok, crops: torch.Tensor) -> tuple[dict, dict]:
    """(per-hue row: hue shift and chroma ratio per hue bin over the crops' saturated pixels; flat-patch row: ΔE2000
    of each FLAT colour as a 64x64 patch, and mid-grey's cast in 1/255) for one tokenizer (or None: WebP)."""
    recon = tok.decode(tok.encode(crops))
    hues = {"method": name}
    for r in hue_fidelity(recon, crops):
        hues[f"{r['hue']} shift °"] = r["hue shift °"]
        hues[f"{r['hue']} chroma"] = r["chroma ratio"]
    patches = torch.tensor(list(FLAT.values()), dtype=torch.float32)[:, :, None, None].expand(-1, 3, 64, 64)
    decoded = tok.decode(tok.encode(patches.contiguous()))
    flat = {"method": name, **{k: v.item() for k, v in zip(FLAT, ciede2000(decoded, patches))}}
    flat["mid-grey cast /255"] = grey_cast(decoded[-1:]).item() * 255
    return hues, flat


def code_space_row(name: str, tok, crops: torch.Tensor) -> dict:
    """Live dimensions of the lookup and the R² of L*, a*, b* from it, on the first 16 crops."""
    space = code_space(tok, crops[:16])
    shares = [v / sum(space.eigenvalues) for v in space.eigenvalues[:5]]
    return {"method": name, "lookup dims": len(space.eigenvalues), "live dims": space.live_dims,
            "variance shares": " ".join(f"{v:.3f}" for v in shares), "R² L*": space.r2["L*"],
            "R² a*": space.r2["a*"], "R² b*": space.r2["b*"]}  # fmt: skip


def gamut(tokenizers: list, names: list[str], path: Path) -> None:
    """A PNG: each tokenizer's codebook in the CIELAB a*b* plane (every code decoded alone, as one patch, drawn
    in its own colour) over the sRGB gamut's a*b* extent (grey)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.color import rgb2lab

    grid = torch.stack(torch.meshgrid(*[torch.linspace(0, 1, 24)] * 3, indexing="ij"), -1).reshape(-1, 3)
    srgb = rgb2lab(grid.numpy()[None])[0]
    fig, axes = plt.subplots(1, len(tokenizers), figsize=(4 * len(tokenizers), 4), squeeze=False)
    for ax, tok, name in zip(axes[0], tokenizers, names):
        patches = tok.decode(torch.arange(tok.codebook_size)[:, None, None])  # (K, 3, f, f)
        rgb = patches.mean((2, 3)).clamp(0, 1)
        lab = rgb2lab(rgb.numpy()[None])[0]
        ax.scatter(srgb[:, 1], srgb[:, 2], s=2, c="0.88")
        ax.scatter(lab[:, 1], lab[:, 2], s=3, c=rgb.numpy())
        ax.set(title=name, xlabel="a* (green - red)", ylabel="b* (blue - yellow)", xlim=(-90, 100), ylim=(-110, 100))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def thread_agreement(tok, crops: torch.Tensor, codes: torch.Tensor) -> tuple[float, float]:
    """(share of codes that differ when encoded on 1 thread, PSNR in dB between the two decodes)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = tok.encode(crops)
    finally:
        torch.set_num_threads(threads)
    changed = (single != codes).float().mean().item()
    return changed, psnr(tok.decode(single), tok.decode(codes)).mean().item() if changed else float("inf")


def webp(x: torch.Tensor, bpp: float) -> torch.Tensor:
    """One crop (3, H, W) through WebP at the highest quality whose file is at most `bpp` bits per pixel."""
    from PIL import Image

    im, budget = tensor_to_image(x), bpp * x.shape[1] * x.shape[2] / 8
    best = None
    lo, hi = 0, 100
    while lo <= hi:  # file size grows with quality: binary search for the largest that fits
        q = (lo + hi) // 2
        buf = io.BytesIO()
        im.save(buf, format="WEBP", quality=q, method=4)
        if buf.tell() <= budget:
            best, lo = buf.getvalue(), q + 1
        else:
            hi = q - 1
    if best is None:  # not even quality 0 fits: use it anyway (the row then spends more bits)
        buf = io.BytesIO()
        im.save(buf, format="WEBP", quality=0, method=4)
        best = buf.getvalue()
    return image_to_tensor(Image.open(io.BytesIO(best)))


def measure_webp(crops: torch.Tensor, kinds: torch.Tensor, bpp: float) -> list[dict]:
    recon = torch.stack([webp(c, bpp) for c in crops])
    grey = torch.stack([webp(c, bpp) for c in to_grey(crops)])
    return [{**r, "bpp": bpp} for r in quality(f"WebP at {bpp:.3f} bpp", recon, crops, grey, kinds)]


QUALITY = ("method", "crops", "bpp", "PSNR dB", "SSIM", "ΔE2000", "chroma ratio", "grey cast /255", "border/inner")
CODES = ("method", "usage", "uniform usage", "perplexity", "1 vs N threads: codes changed", "decodes agree dB",
         "encode img/s", "encode img/s, one at a time", "decode img/s")  # fmt: skip


FORMATS = {"PSNR dB": "{:.2f}", "SSIM": "{:.4f}", "ΔE2000": "{:.2f}", "chroma ratio": "{:.3f}",
           "grey cast /255": "{:.2f}", "border/inner": "{:.2f}", "bpp": "{:.3f}", "usage": "{:.3f}",
           "uniform usage": "{:.3f}", "perplexity": "{:.0f}", "1 vs N threads: codes changed": "{:.4f}",
           "decodes agree dB": "{:.1f}", "encode img/s": "{:.1f}", "encode img/s, one at a time": "{:.1f}",
           "decode img/s": "{:.1f}", "s/step": "{:.2f}", "R² a*": "{:.2f}", "R² b*": "{:.2f}", "R² L*": "{:.2f}",
           **{f"{h} {w}": f for h in HUES for w, f in (("shift °", "{:+.0f}"), ("chroma", "{:.2f}"))},
           **{c: "{:.1f}" for c in ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "magenta",
                                    "mid-grey", "mid-grey cast /255")}}  # fmt: skip


def table(rows: list[dict], columns: tuple[str, ...] | None = None) -> str:
    return tables.table(rows, columns, FORMATS)


def side_by_side(tokenizers: list, crops: torch.Tensor, path: Path) -> None:
    """A PNG grid: one row per crop, original then each tokenizer's reconstruction."""
    rows = [torch.cat([c, *(tok.decode(tok.encode(c)) for tok in tokenizers)], dim=2) for c in crops]
    tensor_to_image(torch.cat(rows, dim=1)).save(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizers", nargs="+", default=list(DEFAULT_TOKENIZERS), help="zoo names or folders")
    ap.add_argument("--photos", default="data/photos", help="where gather_photos writes (or wrote) the photos")
    ap.add_argument("--heldout", help="a folder of held-out photos instead of the gathered ones")
    ap.add_argument("--max-per-photo", type=int, default=4, help="at most this many crops per image (0: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--side-by-side", help="write a PNG of 4 held-out crops: original | each tokenizer")
    ap.add_argument("--gamut", help="write a PNG of each codebook's colours in the CIELAB a*b* plane")
    ap.add_argument("--update-card", help="rewrite the measured table between the markers in this README")
    ap.add_argument("--hf", action="append", default=[], metavar="PATH", help="add a pretrained VQ-VAE (see above)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    folder = Path(args.heldout) if args.heldout else gather_photos(args.photos).heldout
    crops, kinds = heldout_crops(folder, args.max_per_photo)
    rows, code_rows, toks, hue_rows, flat_rows, space_rows = [], [], [], [], [], []
    for where in args.tokenizers + args.hf:
        tok = (load_tokenizer(where, image_size=0) if where in args.hf else load_tokenizer(where)).eval()
        try:
            quality_rows, code_row = measure(Path(str(where)).name, tok, crops, kinds)
        except NotImplementedError as e:  # Chameleon's VQ-VAE encodes but cannot decode
            print(f"skipped {where}: {e}")
            continue
        toks.append(tok)
        rows += quality_rows
        code_rows.append(code_row)
        photo_crops = crops[kinds] if kinds.any() else crops
        hue_row, flat_row = colour_rows(Path(str(where)).name, tok, photo_crops)
        hue_rows.append(hue_row)
        flat_rows.append(flat_row)
        if hasattr(tok, "lookup_latents"):
            space_rows.append(code_space_row(Path(str(where)).name, tok, photo_crops))
    rows += measure_webp(crops, kinds, rows[0]["bpp"])
    names = ", ".join(p.stem for p in image_files(folder))
    out = (
        f"held-out: {len(image_files(folder))} photos ({names}); {len(crops)} crops of {CROP}x{CROP}; "
        f"{args.threads} CPU threads\n\n{table(rows, QUALITY)}\n\n{table(code_rows, CODES)}"
    )
    hue_columns = ("method", *(f"{h} {what}" for h in HUES for what in ("shift °", "chroma")))
    out += "\n\nPer hue on the photographs' pixels of chroma >= 15 (hue shift in degrees; chroma ratio, 1 = kept):"
    out += f"\n\n{table(hue_rows, hue_columns)}"
    out += f"\n\nFlat 64x64 patches decoded: CIEDE2000 per colour, and mid-grey's cast:\n\n{table(flat_rows)}"
    if space_rows:
        out += f"\n\nThe code space on 16 photograph crops (live: >= 1% of the variance):\n\n{table(space_rows)}"
    photos = [r for r in rows if r["method"].endswith("· photos")]
    if len(args.tokenizers) > 1 and "plain" in photos[1]["method"]:
        out += f"\n\nPSNR gain of {args.tokenizers[0]} over the plain-VQ baseline on the photographs: "
        out += f"{photos[0]['PSNR dB'] - photos[1]['PSNR dB']:+.2f} dB"
    print(out)
    if args.side_by_side:
        photo_idx = kinds.nonzero()[:, 0]  # four photographs, spread over the held-out set
        picks = photo_idx[torch.linspace(0, len(photo_idx) - 1, 4).round().long()]
        side_by_side(toks, crops[picks], Path(args.side_by_side))
        print(f"wrote {args.side_by_side}: original | {' | '.join(args.tokenizers)}")
    if args.gamut:
        gamut(toks[: len(args.tokenizers)], args.tokenizers, Path(args.gamut))
        print(f"wrote {args.gamut}: each codebook in the a*b* plane")
    if args.update_card:
        tables.update_card(Path(args.update_card), out, "python benchmarks/image_tokenizer.py")
        print(f"updated {args.update_card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
