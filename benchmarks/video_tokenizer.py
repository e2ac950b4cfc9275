"""Video tokenizer benchmark on held-out clips: video-vq (3-D, 4x8x8) against per-frame image coding at the
same number of tokens.

    make data                                   # once: the photos the clips are made from
    python benchmarks/video_tokenizer.py [--tokenizer video-vq [more ...]] [--image image-vq-f8] [--clips 24]
                                         [--strip tokenizers/video-vq/heldout.png]
                                         [--update-card tokenizers/video-vq/README.md]

Every row is measured in this one run, on clips made from the held-out photos of
`mmgist.data.images.gather_photos` (never trained on: `mmgist.data.video.heldout_clips`, 17 frames of
128x128 at 8 fps, the motion kinds in turn). Methods at one token budget (512 tokens per second):
- video-vq: 1 + 4 latent frames of 16 x 16 codes per 17-frame clip (1280 tokens);
- per-frame image-vq-f8 on frames scaled to 64 x 64 (8 x 8 codes each, 1088 tokens), scaled back up;
- per-frame image-vq-f8 on every fourth frame at full size (5 x 256 = 1280 tokens), the frames between
  blended linearly;
and, as a reference at 4x the budget, image-vq-f8 on every frame at full size (4352 tokens).
Per method: tokens per clip and per second of video, PSNR and SSIM per frame (mean), temporal flicker
(mean |(x[t+1] - x[t]) - (y[t+1] - y[t])| over frames and pixels, in 1/255: how much the frame-to-frame
change differs from the original's), codebook usage over all clips' codes next to what as many uniform
draws would reach, encode and decode frames per second on the CPU (--threads). A
second table gives PSNR per kind of motion.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import tables
import torch
import torch.nn.functional as F

from mmgist import load_tokenizer
from mmgist.data.images import gather_photos
from mmgist.data.video import KINDS, heldout_clips
from mmgist.io import tensor_to_image
from mmgist.metrics import psnr, ssim

FRAMES, SIZE, FPS = 17, 128, 8.0
COLUMNS = ("method", "tokens/clip", "tokens/s", "PSNR dB", "SSIM", "flicker /255", "usage", "uniform usage",
           "encode fps", "decode fps")  # fmt: skip
FORMATS = {"PSNR dB": "{:.2f}", "SSIM": "{:.4f}", "flicker /255": "{:.2f}", "usage": "{:.3f}",
           "uniform usage": "{:.3f}", "encode fps": "{:.1f}", "decode fps": "{:.1f}", "tokens/s": "{:.0f}"}  # fmt: skip


CODEBOOK = 4096  # every method here has 4096 codes (FSQ 8^4, image-vq-f8's VQ)


def video_vq(tok):
    def run(clip: torch.Tensor):
        t0 = time.perf_counter()
        codes = tok.encode(clip)
        t1 = time.perf_counter()
        recon = tok.decode(codes)
        return recon, codes, t1 - t0, time.perf_counter() - t1

    return run


def per_frame_half(image):
    """Every frame at half size through the image tokenizer, scaled back up."""

    def run(clip: torch.Tensor):
        small = F.interpolate(clip, scale_factor=0.5, mode="bilinear", antialias=True, align_corners=False)
        t0 = time.perf_counter()
        codes = image.encode(small)
        t1 = time.perf_counter()
        out = image.decode(codes)
        t2 = time.perf_counter()
        recon = F.interpolate(out, size=clip.shape[-2:], mode="bilinear", align_corners=False).clamp(0, 1)
        return recon, codes, t1 - t0, t2 - t1

    return run


def keyframes(image, every: int = 4):
    """Every `every`-th frame at full size through the image tokenizer; the frames between blended linearly."""

    def run(clip: torch.Tensor):
        keys = clip[::every]
        t0 = time.perf_counter()
        codes = image.encode(keys)
        t1 = time.perf_counter()
        decoded = image.decode(codes)
        t2 = time.perf_counter()
        frames = []
        for t in range(clip.shape[0]):
            k, r = divmod(t, every)
            a, b = decoded[k], decoded[min(k + 1, len(decoded) - 1)]
            frames.append(a + (b - a) * r / every)
        return torch.stack(frames), codes, t1 - t0, t2 - t1

    return run


def per_frame_full(image):
    def run(clip: torch.Tensor):
        t0 = time.perf_counter()
        codes = image.encode(clip)
        t1 = time.perf_counter()
        return image.decode(codes), codes, t1 - t0, time.perf_counter() - t1

    return run


def flicker(recon: torch.Tensor, clip: torch.Tensor) -> float:
    return ((recon.diff(dim=0) - clip.diff(dim=0)).abs().mean() * 255).item()


def measure(name: str, run, clips: list[tuple[str, torch.Tensor]]) -> tuple[dict, dict, list[torch.Tensor]]:
    """(main row, PSNR per kind, reconstructions)."""
    run(clips[0][1])  # warm-up: oneDNN builds its kernels on the first call of a shape
    p, s, fl, enc, dec, tokens, by_kind, recons = [], [], [], 0.0, 0.0, 0, {k: [] for k in KINDS}, []
    seen = torch.zeros(CODEBOOK, dtype=torch.bool)
    for kind, clip in clips:
        recon, codes, te, td = run(clip)
        seen[codes.flatten()] = True
        n = codes.numel()
        recon = recon[: clip.shape[0]]
        recons.append(recon)
        frame_psnr = psnr(recon, clip).mean().item()
        p.append(frame_psnr)
        s.append(ssim(recon, clip).mean().item())
        fl.append(flicker(recon, clip))
        by_kind[kind].append(frame_psnr)
        enc, dec, tokens = enc + te, dec + td, tokens + n
    frames = sum(c.shape[0] for _, c in clips)
    per_clip = tokens / len(clips)
    row = {"method": name, "tokens/clip": round(per_clip), "tokens/s": per_clip / (FRAMES / FPS),
           "PSNR dB": _mean(p), "SSIM": _mean(s), "flicker /255": _mean(fl), "usage": float(seen.float().mean()),
           "uniform usage": 1 - (1 - 1 / CODEBOOK) ** tokens, "encode fps": frames / enc,
           "decode fps": frames / dec}  # fmt: skip
    kinds = {"method": name, **{k: _mean(v) for k, v in by_kind.items() if v}}
    return row, kinds, recons


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def strip(clips, recons: dict[str, list[torch.Tensor]], picks: list[int], path: Path) -> None:
    """A PNG: per picked clip, rows original / each method, frames 0, 4, 8, 12, 16 side by side."""
    rows = []
    for i in picks:
        rows.append(torch.cat(list(clips[i][1][::4]), dim=2))
        rows += [torch.cat(list(r[i][::4]), dim=2) for r in recons.values()]
    tensor_to_image(torch.cat(rows, dim=1)).save(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer", nargs="+", default=["video-vq"], help="zoo names or folders (the first is scored)")
    ap.add_argument("--image", default="image-vq-f8", help="the image tokenizer for the per-frame rows")
    ap.add_argument("--photos", default="data/photos", help="where gather_photos writes (or wrote) the photos")
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--strip", help="write a PNG of 3 held-out clips: original and each method")
    ap.add_argument("--update-card", help="rewrite the measured table between the markers in this README")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    folder = gather_photos(args.photos).heldout
    clips = heldout_clips(folder, n=args.clips, frames=FRAMES, size=SIZE)
    image = load_tokenizer(args.image).eval()
    methods = {
        **{f"{Path(t).name} (3-D, 4x8x8)": video_vq(load_tokenizer(t).eval()) for t in args.tokenizer},
        f"{args.image} per frame at 64x64": per_frame_half(image),
        f"{args.image} on every 4th frame, blended": keyframes(image),
        f"{args.image} per frame at 128x128 (4x the tokens)": per_frame_full(image),
    }
    rows, kinds, recons = [], [], {}
    for name, run in methods.items():
        row, by_kind, recon = measure(name, run, clips)
        rows.append(row)
        kinds.append(by_kind)
        recons[name] = recon
    n = len(args.tokenizer)
    gain = rows[0]["PSNR dB"] - max(r["PSNR dB"] for r in rows[n : n + 2])
    kind_table = tables.table(kinds, ("method", *KINDS), dict.fromkeys(KINDS, "{:.2f}"))
    out = (f"held-out: {len(clips)} clips of {FRAMES} frames at {SIZE}x{SIZE}, {FPS:g} fps, from {folder} "
           f"({', '.join(KINDS)} in turn); {args.threads} CPU threads\n\n{tables.table(rows, COLUMNS, FORMATS)}\n\n"
           f"PSNR dB per kind of motion\n\n{kind_table}\n\n"
           f"PSNR gain of the 3-D tokenizer over the better per-frame method at the same budget: "
           f"{gain:+.2f} dB")  # fmt: skip
    print(out)
    if args.strip:
        strip(clips, recons, [i for i in (0, 3, 5) if i < len(clips)], Path(args.strip))
        print(f"wrote {args.strip}: per clip, original then {' / '.join(methods)}; frames 0, 4, 8, 12, 16")
    if args.update_card:
        tables.update_card(Path(args.update_card), out, "python benchmarks/video_tokenizer.py")
        print(f"updated {args.update_card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
