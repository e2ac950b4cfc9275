"""Kill saves at random points and check that a load always finds one complete version.

    python tests/support/kill_saves.py --count 15 tokenizer vocab model gist

For each kind of artifact two versions A and B are built and A is saved whole. Then, `count` times:
a forked child starts saving the other version, the parent SIGKILLs it at a random moment within
about 1.3x a save's duration, and loads the folder. The load must succeed (the previous version
is never lost) and give exactly the old or the new version (never a mix that still loads). At the
end one more save must leave no temporary files of the killed saves beside the folder. A gist is one
file (safetensors written through a temporary file and a rename), the others folders. Prints one
JSON line per kind: kills, how many left the old and the new version, leftovers before the last save.
Exit code 1 on the first violation.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path
from tempfile import mkdtemp

import torch


def versions(kind: str):
    """(save(version, folder), load(folder) -> fingerprint, [A, B])"""
    from mmgist import ByteTokenizer, SharedVocabulary, build_lm, create_tokenizer, load_model, save_model
    from mmgist.gist import model_fingerprint
    from mmgist.tokenizers import ModalityTokenizer

    def tok(seed: int):
        torch.manual_seed(seed)
        return create_tokenizer("image-vq", preset="tiny")

    if kind == "tokenizer":
        return (
            lambda t, d: t.save_pretrained(d),
            lambda d: ModalityTokenizer.from_pretrained(d).fingerprint(),
            [tok(1), tok(2)],
            lambda t: t.fingerprint(),
        )
    if kind == "gist":
        from mmgist import GistPrefix

        gists = []
        for seed in (1, 2):
            torch.manual_seed(seed)  # 4 MB of KV: a save long enough to be killed midway
            gists.append(GistPrefix(None, "a" * 64, "b" * 64, 600, 0, {"seed": seed}, torch.randn(16, 2, 4, 64, 64)))
        return (lambda g, f: g.save(f), lambda f: GistPrefix.load(f).identity(), gists, lambda g: g.identity())
    if kind == "vocab":
        vocabs = [SharedVocabulary(ByteTokenizer(), image=tok(seed)) for seed in (1, 2)]
        return (
            lambda v, d: v.save_pretrained(d),
            lambda d: SharedVocabulary.from_pretrained(d).fingerprint(),
            vocabs,
            lambda v: v.fingerprint(),
        )
    vocab = SharedVocabulary(ByteTokenizer(), image=tok(1))
    models = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        models.append(build_lm(vocab, "tiny"))

    def load(d):
        model, v = load_model(d)
        return model_fingerprint(model) + v.fingerprint()

    return (
        lambda m, d: save_model(m, vocab, d),
        load,
        models,
        lambda m: model_fingerprint(m) + vocab.fingerprint(),
    )


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


def run(kind: str, count: int, rng: random.Random) -> dict:
    save, load, (a, b), fingerprint = versions(kind)
    folder = Path(mkdtemp(prefix=f"kill-{kind}-")) / "artifact"
    (folder.parent / "README.md").write_text("kept")
    save(a, folder)
    card = folder / "README.md" if folder.is_dir() else folder.parent / "README.md"
    card.write_text("a card the saves do not own")
    prints = {fingerprint(a): "A", fingerprint(b): "B"}
    t0 = time.perf_counter()
    for _ in range(3):
        save(a, folder)
    duration = (time.perf_counter() - t0) / 3
    prev, outcome = "A", {"old": 0, "new": 0}
    for k in range(count):
        new = "B" if prev == "A" else "A"
        pid = os.fork()
        if pid == 0:  # the child: one save, then out without any cleanup of its own
            try:
                save(b if new == "B" else a, folder)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0, 1.3 * duration))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        try:
            got = prints.get(load(folder), "a mix of versions")
        except Exception as e:
            sys.exit(f"{kind} kill {k}: the folder no longer loads ({type(e).__name__}: {e}); previous version lost")
        if got not in (prev, new):
            sys.exit(f"{kind} kill {k}: loaded {got}, expected {prev} (old) or {new} (new)")
        if card.read_text() != "a card the saves do not own":
            sys.exit(f"{kind} kill {k}: a file the save does not own was lost")
        outcome["old" if got == prev else "new"] += 1
        prev = got
    before = leftovers(folder)
    save(a, folder)
    after = leftovers(folder)
    if after or prints[load(folder)] != "A":
        sys.exit(f"{kind}: a complete save left {after} beside the folder")
    shutil.rmtree(folder.parent)
    return {"kind": kind, "kills": count, **outcome, "leftovers_before_last_save": len(before), "save_s": duration}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kinds", nargs="+", choices=["tokenizer", "vocab", "model", "gist"])
    parser.add_argument("--count", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    # No progress bars: tqdm's write lock is a multiprocessing lock shared with the forked children, and a
    # child killed while holding it (transformers' "Writing model shards" bar) left the parent waiting forever
    os.environ["TQDM_DISABLE"] = "1"
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    rng = random.Random(args.seed)
    for kind in args.kinds:
        print(json.dumps(run(kind, args.count, rng)), flush=True)


if __name__ == "__main__":
    main()
