"""Compress a reference photo plus instructions into 4 gist tokens, then answer queries both ways.

    python examples/gist_compress.py [--model models/demo-brightness] [--k 4] [--photo coffee]

Prints the fidelity report (held-out continuations), task accuracy on the photo's 5 region questions
(full prefix, gist, baselines), the answers with the full prefix and with the gist side by side, and
the time per query each way, measured here.
"""

from __future__ import annotations

import argparse
import time

from mmgist import GistConfig, Prompt, distill_gist, generate, load_model
from mmgist.datasets import photo_paths
from mmgist.demo_task import CROP, INSTRUCTIONS, REGIONS, TaskSample, level
from mmgist.gist.report import summary
from mmgist.io import image_to_tensor, load_image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/demo-brightness")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--photo", default="coffee", help="a bundled held-out photo")
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()

    model, vocab = load_model(args.model)
    photo = image_to_tensor(load_image(photo_paths()[args.photo]))
    top, left = (photo.shape[1] - CROP) // 2, (photo.shape[2] - CROP) // 2
    photo = photo[:, top : top + CROP, left : left + CROP]
    words = INSTRUCTIONS[0][1]
    sample = TaskSample(photo, 0, {r: words[level(photo, r)] for r in REGIONS})
    prefix = sample.prefix()
    queries = [TaskSample.query(r) for r in REGIONS]
    n_prefix = len(vocab.encode(prefix, add_bos=True))
    print(f"prefix: a {CROP}x{CROP} photo ({args.photo}) + instruction = {n_prefix} tokens -> {args.k} gist tokens")

    gist = distill_gist(
        model,
        vocab,
        prefix,
        GistConfig(num_gist_tokens=args.k, steps=args.steps),
        queries=sample.questions()[:3],  # 3 region questions to serve (options and true answers)
        heldout_queries=sample.questions()[3:],  # 2 it never sees, to measure how it serves new queries
        progress=True,
    )
    print("\n" + summary(gist.report) + "\n")
    cache = gist.cache(model)
    print(f"\n{'query':<24} {'full prefix':<14} {'gist':<14} pixels say  (the last 2 unseen in distillation)")
    timings = {"full": 0.0, "gist": 0.0}
    for region, q in zip(REGIONS, queries):
        t0 = time.perf_counter()
        full = generate(model, vocab, Prompt([*prefix, q]), max_new_tokens=8).text().strip()
        t1 = time.perf_counter()
        short = generate(model, vocab, q, max_new_tokens=8, gist=gist, gist_cache=cache).text().strip()
        t2 = time.perf_counter()
        timings["full"] += t1 - t0
        timings["gist"] += t2 - t1
        print(f"{q.strip():<24} {full!r:<14} {short!r:<14} {words[level(photo, region)]!r}")
    n = len(queries)
    print(
        f"\ntime per query: full prefix {1e3 * timings['full'] / n:.0f} ms, gist {1e3 * timings['gist'] / n:.0f} ms "
        f"({timings['full'] / timings['gist']:.1f}x faster)"
    )


if __name__ == "__main__":
    main()
