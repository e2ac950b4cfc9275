"""Tokenize an image with the shipped image tokenizer and look at what the codes keep.

    python examples/image_tokens.py [IMAGE] [--tokenizer image-vq-f8] [--out out/image_tokens.png]

With no IMAGE, a bundled held-out photograph (scikit-image's "chelsea") is used. Prints the grid size
and code statistics, and writes the original and the reconstruction side by side to a PNG.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from mmgist import load_tokenizer
from mmgist.io import image_to_tensor, load_image, save_image
from mmgist.metrics import CodeUsage, psnr, ssim


def default_image() -> Path:
    from mmgist.data.images import photo_paths

    return photo_paths()["chelsea"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("image", nargs="?", help="an image file (default: a bundled photograph)")
    ap.add_argument("--tokenizer", default="image-vq-f8", help="zoo name or folder")
    ap.add_argument("--fit", default="pad", choices=["pad", "crop", "resize", "error"])
    ap.add_argument("--out", default="out/image_tokens.png")
    args = ap.parse_args()

    path = Path(args.image) if args.image else default_image()
    tok = load_tokenizer(args.tokenizer)
    image = image_to_tensor(load_image(path))  # (3, H, W) in [0, 1]
    codes = tok.encode(image, fit=args.fit)  # (h, w)
    recon = tok.decode(codes)  # (3, h * f, w * f)
    original = tok.preprocess(image, fit=args.fit)[0]  # what was encoded (padded / cropped / resized)

    usage = CodeUsage(tok.codebook_size)
    usage.update(codes)
    values, counts = codes.unique(return_counts=True)
    top = counts.argsort(descending=True)[:5]
    print(f"image      {path.name}: {image.shape[2]}x{image.shape[1]} pixels")
    h, w = codes.shape
    print(f"grid       {h} x {w} = {codes.numel()} codes ({tok.factor}x{tok.factor} pixels each)")
    print(
        f"codes      {len(values)} distinct of {tok.codebook_size}; perplexity {usage.perplexity:.0f}; "
        f"most used {', '.join(f'{int(values[i])} ({int(counts[i])}x)' for i in top)}"
    )
    quality = psnr(recon[None], original[None]).item(), ssim(recon[None], original[None]).item()
    print(f"quality    PSNR {quality[0]:.2f} dB, SSIM {quality[1]:.4f}")
    print(f"first row  {codes[0, :12].tolist()} ...")
    save_image(torch.cat([original, recon], dim=2), args.out)
    print(f"wrote      {args.out} (left: input, right: reconstruction from {codes.numel()} codes)")


if __name__ == "__main__":
    main()
