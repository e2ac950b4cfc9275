"""Tokenize a video with the shipped video tokenizer and see what its codes keep.

    python examples/video_tokens.py [VIDEO] [--tokenizer video-vq] [--out out/video_tokens]

VIDEO is any file PyAV reads (mp4, webm, avi, mkv, animated gif), read at 8 frames per second, the
shorter side scaled to 128 and centre-cropped square, at most 17 frames. With no VIDEO, a clip is made
from a photo bundled with scikit-image (a pan with a slow zoom). Prints the code grid, tokens per
second and PSNR; writes the reconstruction as a GIF and a PNG strip of original (top) and
reconstructed (bottom) frames into --out.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("video", nargs="?", help="a video file (default: a clip made from a bundled photo)")
    ap.add_argument("--tokenizer", default="video-vq", help="zoo name or folder")
    ap.add_argument("--out", default="out/video_tokens", help="folder for the GIF and the PNG strip")
    args = ap.parse_args()

    tok = load_tokenizer(args.tokenizer).eval()
    if args.video:
        frames, _ = load_video(args.video, fps=FPS, max_frames=FRAMES, size=SIZE)
        top, left = (frames.shape[-2] - SIZE) // 2, (frames.shape[-1] - SIZE) // 2
        clip = frames[:, :, top : top + SIZE, left : left + SIZE].float() / 255
    else:
        clip = bundled_clip()
    codes = tok.encode(clip)
    recon = tok.decode(codes)[: clip.shape[0]]
    print(f"{clip.shape[0]} frames of {SIZE}x{SIZE} -> codes {tuple(codes.shape)} ({codes.numel()} tokens); "
          f"{tok.tokens_per_second(SIZE, SIZE):.0f} tokens per second at {tok.fps:g} fps")  # fmt: skip
    print(f"PSNR {psnr(recon, clip).mean():.2f} dB (mean over frames)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_video(out / "reconstruction.gif", recon, FPS)
    strip = torch.cat([torch.cat(list(clip[::4]), dim=2), torch.cat(list(recon[::4]), dim=2)], dim=1)
    tensor_to_image(strip).save(out / "strip.png")
    print(f"wrote {out / 'reconstruction.gif'} and {out / 'strip.png'} (frames 0, 4, 8, ...: original above)")


if __name__ == "__main__":
    main()
