"""Train the demo language model on the demo task (mmgist.demo_task), stop on validation loss, measure it.

    make data                                            # once: the photo collections in data/photos
    python examples/train_demo_model.py --out models/demo-photo-qa      # the shipped run: its defaults
                           # (5.2 min on one H200 GPU + 16 cores; some 16 h on a 2-core CPU, from 3.5 s per batch of 16)
    python examples/train_demo_model.py --evaluate-only                  # measure the saved model again

Photos: `data/photos/train` (gathered by `make data`) minus every VALIDATION_EVERY-th image (sorted by
name), which gives the validation crops; the held-out photos (`data/photos/heldout`, never trained on)
give the figures. The crops are made by --workers processes and tokenized in batches by the shipped
`image-vq-f8` (96x96 crops: 12x12 codes) on --device, in memory. Training runs in chunks of
--eval-every steps through the shared loop (mmgist.train, resumable from data/<out>-run); after each
chunk the validation loss is measured and the best model so far is saved to --out; training stops
after --patience chunks without improvement, or at the first chunk boundary past --time-limit.
training.json in --out holds data, steps, wall time, the validation curve and the held-out accuracy
per question type. The same command runs on a CPU or a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from mmgist import ByteTokenizer, SharedVocabulary, build_lm, load_model, load_tokenizer
from mmgist.data.images import image_files
from mmgist.demo_task import REGIONS, TYPES, TaskSample, chance, evaluate, make_samples, training_rows
from mmgist.lm import save_model
from mmgist.lm.manifest import TokenShards
from mmgist.lm.scoring import option_kl, prefix_head, score_options
from mmgist.lm.train import train_lm, validation_loss
from mmgist.storage import write_json_atomic

VALIDATION_EVERY = 8


def split_training_photos(folder: Path) -> tuple[list[Path], list[Path]]:
    """(training files, validation files): every VALIDATION_EVERY-th file by name goes to validation."""
    files = image_files(folder)
    return [p for i, p in enumerate(files) if i % VALIDATION_EVERY], files[::VALIDATION_EVERY]


def samples_in_parallel(files: list[Path], n: int, seed: int, workers: int, colour: bool) -> list[TaskSample]:
    """make_samples(files, n, seed) made by `workers` processes in chunks (the same crops up to float
    rounding: interpolation sums in another order on one thread)."""
    if workers <= 1:
        return make_samples(files, n, seed=seed, colour=colour)
    size = -(-n // workers)
    with ProcessPoolExecutor(workers) as pool:
        parts = pool.map(_chunk, [(files, min(size, n - a), seed, a, colour) for a in range(0, n, size)])
        return [s for part in parts for s in pickle.loads(part)]


def _chunk(job: tuple[list[Path], int, int, int, bool]) -> bytes:
    """One worker's samples, pickled by value: the pool's own pickler would pass each tensor as a file
    descriptor, and tens of thousands of them exhaust what a process (or a sandbox) allows."""
    files, n, seed, start, colour = job
    torch.set_num_threads(1)
    return pickle.dumps(make_samples(files, n, seed=seed, start=start, colour=colour))


def tokenized(samples: list[TaskSample], vocab: SharedVocabulary, seed: int) -> TokenShards:
    return TokenShards.tokenize(training_rows(samples, seed=seed), vocab)


def measure(model, vocab, samples) -> dict:
    full = evaluate(model, vocab, samples)
    bare = evaluate(model, vocab, samples, with_prefix=False)
    return {
        "crops": len(samples),
        "questions": full.questions,
        "accuracy_with_prefix": full.accuracy,
        "accuracy_without_prefix": bare.accuracy,
        "chance": sum(chance(samples).values()) / len(chance(samples)),
        "accuracy_with_prefix_varied_crops": full.varied_accuracy,
        "per_type_with_prefix": full.per_type,
        "per_type_without_prefix": bare.per_type,
        "per_type_chance": chance(samples),
        "option_kl_full_vs_no_prefix": option_kl(full.probs, bare.probs),
    }


def contact_sheet(model, vocab, samples: list[TaskSample], path: Path) -> None:
    """One row per crop: the crop (2x), then per region the true level and colour and the model's choice
    after the full prefix (a * marks a wrong one), and the main colour: what the accuracy table averages."""
    from PIL import Image, ImageDraw

    width, row = 900, 212
    sheet = Image.new("RGB", (width, row * len(samples)), "white")
    draw = ImageDraw.Draw(sheet)
    for n, s in enumerate(samples):
        crop = (s.image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        sheet.paste(Image.fromarray(crop).resize((192, 192), Image.NEAREST), (10, n * row + 10))
        head = prefix_head(model, vocab, s.prefix())
        picks = {}
        for t in s.turns():
            if len(t.options) > 1 and (t.type.endswith(("brightness", "colour"))):
                best = score_options(model, vocab, t.query, t.options, head=head).best
                picks[t.type] = (t.options[t.answer].strip(" .").split()[-1], t.options[best].strip(" .").split()[-1])
        lines = [f"style: {s.style.instruction[:90]}"]
        for attribute in ("brightness", "colour"):
            for r in range(3):
                cells = []
                for c in range(3):
                    truth, pick = picks[f"{REGIONS[3 * r + c]} {attribute}"]
                    cells.append(f"{truth:>7}/{pick:<7}{' ' if truth == pick else '*'}")
                lines.append(f"{attribute if r == 0 else '':<10} " + " ".join(cells))
        truth, pick = picks["main colour"]
        lines.append(
            f"main colour: pixels {truth}, model {pick}{'' if truth == pick else '  *'}    (each cell: pixels/model)"
        )
        for k, line in enumerate(lines):
            draw.text((215, n * row + 8 + 22 * k), line, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="models/demo-photo-qa")
    ap.add_argument("--steps", type=int, default=2000, help="the LR schedule's length (training may stop earlier)")
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--patience", type=int, default=100, help="chunks without a better validation loss before stopping")
    ap.add_argument("--time-limit", type=float, default=None, help="minutes; stop at the first chunk end past it")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=7e-4)
    ap.add_argument("--train-samples", type=int, default=60000)
    ap.add_argument("--validation-samples", type=int, default=300)
    ap.add_argument("--heldout-samples", type=int, default=40)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--data", default="data")
    ap.add_argument("--tokenizer", default="image-vq-f8")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes making the crops")
    ap.add_argument("--no-colour", dest="colour", action="store_false", help="no colour augmentation of the "
                    "training crops (make_samples(colour=True) is the default)")  # fmt: skip
    ap.add_argument("--no-evaluate", action="store_true", help="train only (the held-out figures come later)")
    ap.add_argument("--evaluate-only", action="store_true", help="measure the model in --out again (no training)")
    args = ap.parse_args()

    photos = Path(args.data) / "photos"
    out = Path(args.out)
    if not args.evaluate_only:
        train(args, photos, out)
    if args.no_evaluate:
        return
    if not (photos / "heldout").is_dir():
        sys.exit(f"no held-out photos in {photos / 'heldout'}: `make data` gathers them (Debian's photo packages)")
    model, vocab = load_model(out)
    heldout = make_samples(photos / "heldout", args.heldout_samples, seed=1)
    figures = measure(model, vocab, heldout)
    record = json.loads((out / "training.json").read_text(encoding="utf-8"))
    write_json_atomic(out / "training.json", {**record, "heldout": figures})
    print(json.dumps({k: v for k, v in figures.items() if not k.startswith("per_type")}, indent=2))
    print(json.dumps(figures["per_type_with_prefix"], indent=2))
    contact_sheet(model, vocab, heldout[:8], out / "heldout.png")
    print(f"wrote {out / 'heldout.png'}")


def train(args: argparse.Namespace, photos: Path, out: Path) -> None:
    """Train with validation stops; the best model and training.json (data, steps, curve) go to `out`."""
    t0 = time.perf_counter()
    train_files, val_files = split_training_photos(photos / "train")
    train_samples = samples_in_parallel(train_files, args.train_samples, 0, args.workers, args.colour)  # no CUDA yet
    vocab = SharedVocabulary(text=ByteTokenizer(), image=load_tokenizer(args.tokenizer))
    vocab.tokenizer("image").to(args.device)
    shards = tokenized(train_samples, vocab, seed=0)
    val_shards = tokenized(make_samples(val_files, args.validation_samples, seed=2), vocab, seed=2)
    vocab.tokenizer("image").cpu()
    del train_samples
    torch.set_float32_matmul_precision("high")  # TF32 matrix products on a GPU; no effect on a CPU
    data_seconds = time.perf_counter() - t0
    print(f"{len(shards)} training and {len(val_shards)} validation sequences in {data_seconds:.0f} s", flush=True)
    torch.manual_seed(0)
    model = build_lm(vocab, preset=args.preset).to(args.device)
    run_dir = Path(args.data) / f"{out.name}-run"  # checkpoints: rerunning the same command resumes
    curve, best, best_step, since_best, done = [], float("inf"), 0, 0, 0
    while done < args.steps and since_best < args.patience:
        if args.time_limit is not None and time.perf_counter() - t0 > 60 * args.time_limit:
            print(f"time limit of {args.time_limit} min reached at step {done}", flush=True)
            break
        stop = min(done + args.eval_every, args.steps)
        result = train_lm(
            model, vocab, shards, out.parent / f".{out.name}-last", steps=args.steps, batch_size=args.batch_size,
            lr=args.lr, run_dir=run_dir, stop_at=stop, checkpoint_every=args.eval_every,
        )  # fmt: skip
        done = result.steps
        val = validation_loss(model, vocab, val_shards)["loss"]
        train_loss = result.history[-1]["loss"] if result.history else float("nan")
        curve.append({"step": done, "train_loss": train_loss, "validation_loss": val})
        print(f"step {done}: train loss {train_loss:.4f}, validation loss {val:.4f}", flush=True)
        if val < best:
            best, since_best, best_step = val, 0, done
            save_model(model, vocab, out)
        else:
            since_best += 1
    shutil.rmtree(out.parent / f".{out.name}-last", ignore_errors=True)
    write_json_atomic(
        out / "training.json",
        {
            "command": "python " + " ".join(sys.argv),
            "task": "mmgist.demo_task: photo facts (brightness, colour, texture of a 3x3 grid, comparisons, "
            "extremes, main colour, describe) in 4 answer styles",
            "question_types": len(TYPES),
            "preset": args.preset,
            "parameters": sum(p.numel() for p in model.parameters()),
            "image_tokenizer": args.tokenizer,
            "train_photos": [p.name for p in train_files],
            "validation_photos": [p.name for p in val_files],
            "train_samples": args.train_samples,
            "colour_augment": args.colour,
            "validation_samples": args.validation_samples,
            "schedule_steps": args.steps,
            "steps_done": done,
            "best_step": best_step,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
            "data_seconds": round(data_seconds, 1),
            "wall_seconds": round(time.perf_counter() - t0, 1),
            "validation_curve": curve,
        },
    )


if __name__ == "__main__":
    main()
