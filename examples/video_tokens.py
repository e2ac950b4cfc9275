"""Tokenize a video with both shipped video tokenizers and see, side by side, what their codes keep.

    python examples/video_tokens.py [VIDEO] [--tokenizers video-vq video-keyframes] [--out out/video_tokens]

VIDEO is any file PyAV reads (mp4, webm, avi, mkv, animated gif), read at 8 frames per second, the
shorter side scaled to 128 and centre-cropped square, at most 17 frames. With no VIDEO, a clip is made
from a photo bundled with scikit-image (a pan with a slow zoom). Prints each tokenizer's code grid,
tokens per second and PSNR; writes each reconstruction as a GIF and one labelled PNG strip (original,
then each tokenizer; frames 0, 4, 8, ...) into --out.

Which to use: `video-keyframes` (image-vq-f8 on every fourth frame, blended between) reconstructs better
at the same token count (23.19 against 21.02 dB on held-out clips, both cards); `video-vq` codes motion
in its temporal codes, which the language model can predict, but its frames come out blurred.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from mmgist import load_tokenizer
from mmgist.io import load_video, save_video, tensor_to_image
from mmgist.metrics import psnr

SIZE, FRAMES, FPS = 128, 17, 8


def bundled_clip() -> torch.Tensor:
    """(17, 3, 128, 128): a pan with a slow zoom over scikit-image's astronaut photo."""
    import torch.nn.functional as F
    from skimage import data

    photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float()[None] / 255  # (1, 3, 512, 512)
    frames = []
    for t in range(FRAMES):
        side = 256 - 4 * t
        top, left = 60 + 3 * t, 120 + 6 * t
        crop = photo[:, :, top : top + side, left : left + side]
        frames.append(F.interpolate(crop, size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False))
    return torch.cat(frames).clamp(0, 1)


def labelled(rows: list[torch.Tensor], labels: list[str], margin: int = 120):
    """PIL image: each row (3, H, W) with its label written in a white margin on its left."""
    from PIL import Image, ImageDraw

    strips = [tensor_to_image(r) for r in rows]
    w, h = strips[0].width + margin, sum(s.height for s in strips)
    sheet = Image.new("RGB", (w, h), "white")
    draw, y = ImageDraw.Draw(sheet), 0
    for strip, label in zip(strips, labels):
        sheet.paste(strip, (margin, y))
        draw.text((6, y + strip.height // 2 - 6), label, fill="black")
        y += strip.height
    return sheet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("video", nargs="?", help="a video file (default: a clip made from a bundled photo)")
    ap.add_argument("--tokenizers", nargs="+", default=["video-vq", "video-keyframes"], help="zoo names or folders")
    ap.add_argument("--out", default="out/video_tokens", help="folder for the GIFs and the PNG strip")
    args = ap.parse_args()

    if args.video:
        frames, _ = load_video(args.video, fps=FPS, max_frames=FRAMES, size=SIZE)
        top, left = (frames.shape[-2] - SIZE) // 2, (frames.shape[-1] - SIZE) // 2
        clip = frames[:, :, top : top + SIZE, left : left + SIZE].float() / 255
    else:
        clip = bundled_clip()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, labels = [torch.cat(list(clip[::4]), dim=2)], ["original"]
    for name in args.tokenizers:
        tok = load_tokenizer(name).eval()
        codes = tok.encode(clip)
        recon = tok.decode(codes)[: clip.shape[0]]
        print(f"{name}: {clip.shape[0]} frames of {SIZE}x{SIZE} -> codes {tuple(codes.shape)} ({codes.numel()} "
              f"tokens, {tok.tokens_per_second(SIZE, SIZE):.0f} per second at {tok.fps:g} fps); "
              f"PSNR {psnr(recon, clip).mean():.2f} dB (mean over frames)")  # fmt: skip
        save_video(out / f"{Path(name).name}.gif", recon, FPS)
        rows.append(torch.cat(list(recon[::4]), dim=2))
        labels.append(f"{Path(name).name}\n{psnr(recon, clip).mean():.1f} dB")
    labelled(rows, labels).save(out / "strip.png")
    print(f"wrote {out / 'strip.png'} (frames 0, 4, 8, ...: the original, then each tokenizer) and one GIF each")


if __name__ == "__main__":
    main()
