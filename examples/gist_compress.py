"""Compress a reference photo plus instructions into k gist tokens, then answer queries both ways.

    python examples/gist_compress.py [--model demo-photo-qa] [--k 4] [--target kv] [--photo coffee]

Prints the fidelity report (held-out continuations, questions of types the gist never saw, the
content control: the same instruction with another photo), and the answers with the full prefix and
with the gist side by side, with the time per query each way, measured here.
"""

from __future__ import annotations

import argparse
import time

from mmgist import GistConfig, Prompt, distill_gist, generate, load_model
from mmgist.data.images import photo_paths
from mmgist.demo_task import CROP, GIST_HELDOUT_MARKERS, STYLES, TaskSample, gist_questions
from mmgist.gist.report import summary
from mmgist.io import image_to_tensor, load_image


def centre_crop(name: str):
    photo = image_to_tensor(load_image(photo_paths()[name]))
    top, left = (photo.shape[1] - CROP) // 2, (photo.shape[2] - CROP) // 2
    return photo[:, top : top + CROP, left : left + CROP]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="demo-photo-qa")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--target", default="kv", choices=["kv", "embeddings"])
    ap.add_argument("--photo", default="coffee", help="a bundled held-out photo")
    ap.add_argument("--control", default="astronaut", help="another held-out photo, for the content control")
    ap.add_argument("--style", type=int, default=0, choices=range(len(STYLES)))
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--self-study", type=int, default=64)
    args = ap.parse_args()

    model, vocab = load_model(args.model)
    sample = TaskSample(centre_crop(args.photo), STYLES[args.style])
    control = TaskSample(centre_crop(args.control), STYLES[args.style])
    prefix = sample.prefix()
    served, unseen = gist_questions(sample)
    n_prefix = len(vocab.encode(prefix, add_bos=True))
    print(f"prefix: a {CROP}x{CROP} photo ({args.photo}) + instruction = {n_prefix} tokens -> {args.k} gist tokens")
    config = GistConfig(num_gist_tokens=args.k, target=args.target, steps=args.steps, self_study=args.self_study)
    gist = distill_gist(
        model,
        vocab,
        prefix,
        config,
        queries=served,  # questions to serve (options and true answers)
        heldout_queries=unseen,  # questions of types it never sees, to measure how it serves new ones
        control_prefix=control.prefix(),
        self_study_exclude=list(GIST_HELDOUT_MARKERS),
        progress=True,
    )
    print("\n" + summary(gist.report) + "\n")
    cache = gist.cache(model)
    print(f"{'query':<36} {'full prefix':<18} {'gist':<18} pixels say  (last {len(unseen)}: types never trained on)")
    timings = {"full": 0.0, "gist": 0.0}
    for q in served + unseen:
        t0 = time.perf_counter()
        full = generate(model, vocab, Prompt([*prefix, q.query]), max_new_tokens=24).text().split(" Q:")[0].strip()
        t1 = time.perf_counter()
        short = generate(model, vocab, q.query, max_new_tokens=24, gist=gist, gist_cache=cache).text()
        short = short.split(" Q:")[0].strip()
        t2 = time.perf_counter()
        timings["full"] += t1 - t0
        timings["gist"] += t2 - t1
        print(f"{q.query.strip():<36} {full!r:<18} {short!r:<18} {q.options[q.answer].strip()!r}")
    n = len(served) + len(unseen)
    print(
        f"\ntime per query: full prefix {1e3 * timings['full'] / n:.0f} ms, gist {1e3 * timings['gist'] / n:.0f} ms "
        f"({timings['full'] / timings['gist']:.1f}x faster)"
    )


if __name__ == "__main__":
    main()
