"""`make demo`: a real photograph plus instructions through the shared vocabulary, then into 4 gist tokens.

1. Tokenize a held-out photo with the shipped image tokenizer, lay text and image out in one id
   space, decode the ids back exactly, and show the reconstruction.
2. On the shipped demo model, compress a photo + instruction prefix into 4 gist tokens and measure
   the fidelity (held-out continuations) and the time per query with the full prefix and with the gist.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from mmgist import ByteTokenizer, Prompt, SharedVocabulary, load_tokenizer
from mmgist.io import image_to_tensor, load_image, save_image
from mmgist.tokenizers.registry import list_zoo

OUT = Path("out/demo")


def sample_photo(name: str = "chelsea") -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data" / f"{name}.png"  # a real photograph, bundled offline, held out


def main() -> None:
    text = ByteTokenizer()
    image_tok = load_tokenizer("image-vq-f8") if "image-vq-f8" in list_zoo() else None
    vocab = SharedVocabulary(text=text, image=image_tok)
    print(vocab)
    print(vocab.layout.describe(), "\n")
    segments: list = ["Reference photo: "]
    if image_tok is not None:
        photo = image_to_tensor(load_image(sample_photo()))[:, :256, :256]
        segments += [photo]
    segments += [" Describe the animal's fur in one word."]
    prompt = Prompt(segments)

    t0 = time.perf_counter()
    ids = vocab.encode(prompt, add_bos=True)
    t1 = time.perf_counter()
    back = vocab.decode(ids)
    t2 = time.perf_counter()
    print(f"prompt: {prompt}")
    print(f"{len(ids)} ids; encode {1e3 * (t1 - t0):.0f} ms, decode {1e3 * (t2 - t1):.0f} ms")
    for seg in back:
        n = len(vocab.encode_segment(seg))
        print(
            f"  {seg.modality:<6} {n:>5} ids",
            f"{seg.text!r}" if seg.modality == "text" else f"codes {tuple(seg.codes.shape)}",
        )
    assert vocab.encode(back, add_bos=True) == ids, "ids -> prompt -> ids must be exact"
    if image_tok is not None:
        rec = back[1].pixels
        mse = torch.mean((rec - photo) ** 2).item()
        print(f"image reconstruction PSNR {10 * torch.log10(torch.tensor(1 / mse)).item():.2f} dB")
        OUT.mkdir(parents=True, exist_ok=True)
        save_image(torch.cat([photo, rec.clamp(0, 1)], dim=2), OUT / "photo_and_reconstruction.png")
        print(f"wrote {OUT / 'photo_and_reconstruction.png'}")
    else:
        print("(no trained image tokenizer in tokenizers/ yet: text only)")
        return
    gist_demo(photo)


def gist_demo(photo: torch.Tensor) -> None:
    from mmgist import GistConfig, distill_gist, generate, load_model
    from mmgist.demo_task import CROP, GIST_HELDOUT_MARKERS, GIST_HELDOUT_TYPES, STYLES, TaskSample, gist_questions
    from mmgist.gist.report import summary

    model, vocab = load_model("demo-photo-qa")  # the shipped model, found from any folder
    crop = photo[:, 96 : 96 + CROP, 64 : 64 + CROP]  # the cat's face: a held-out photo, never trained on
    sample = TaskSample(crop, STYLES[0])  # facts (true answers) computed from the pixels
    other = image_to_tensor(load_image(sample_photo("coffee")))[:, 100 : 100 + CROP, 100 : 100 + CROP]
    control = TaskSample(other, STYLES[0])  # the same instruction with another photo
    served, unseen = gist_questions(sample)
    prefix = sample.prefix()
    n = len(vocab.encode(prefix, add_bos=True))
    print(
        f"\ngist: a {CROP}x{CROP} crop of the photo + instruction = {n} tokens, compressed into 4 gist tokens "
        f"(keys and values per layer), distilled on the model's own questions and answers about the photo and "
        f"{len(served)} questions; question types {', '.join(GIST_HELDOUT_TYPES)} are never trained on"
    )
    config = GistConfig(num_gist_tokens=4, num_continuations=8)  # KV, hidden-state term, 64 self-study, 200 steps
    gist = distill_gist(model, vocab, prefix, config, queries=served, heldout_queries=unseen, progress=True,
                        control_prefix=control.prefix(), self_study_exclude=list(GIST_HELDOUT_MARKERS))  # fmt: skip
    print("\n".join("  " + line for line in summary(gist.report).splitlines()))
    cache = gist.cache(model)
    t_full = t_gist = 0.0
    shown = [t for t in sample.turns() if t.type in GIST_HELDOUT_TYPES]  # whole questions of the unseen types
    print("\nquestions of types the gist never saw (greedy answers side by side):")
    for t in shown:
        t0 = time.perf_counter()
        full = generate(model, vocab, Prompt([*prefix, t.query]), max_new_tokens=80).text().split(" Q:")[0].strip()
        t1 = time.perf_counter()
        short = generate(model, vocab, t.query, max_new_tokens=80, gist=gist, gist_cache=cache).text()
        short = short.split(" Q:")[0].strip()
        t_full, t_gist = t_full + t1 - t0, t_gist + time.perf_counter() - t1
        print(f"  {t.query.strip()}\n    full prefix: {full!r}\n    gist:        {short!r}\n    pixels:      "
              f"{t.options[t.answer].strip()!r}")  # fmt: skip
    first_full, first_gist = time_to_first_token(model, vocab, prefix, gist, shown[0].query)
    print(
        f"distilled in {gist.report['wall_seconds']:.0f} s; first token {1e3 * first_full:.1f} ms after the full "
        f"prefix, {1e3 * first_gist:.1f} ms after the gist's cache ({first_full / first_gist:.1f}x, best of 20); "
        f"whole answers (up to 80 tokens) {1e3 * t_full / len(shown):.0f} ms against {1e3 * t_gist / len(shown):.0f} "
        f"ms ({t_full / t_gist:.1f}x: on this small model most of an answer's time is per token, the same both ways)"
    )


def time_to_first_token(model, vocab, prefix, gist, query: str, repeats: int = 20) -> tuple[float, float]:
    """Seconds to the first answer token, best of `repeats`: the prefix read with the query, against the query
    after a fresh copy of the gist's cache (made before the clock starts)."""
    from mmgist.lm import cache_kwargs

    full_ids = torch.tensor([vocab.encode(Prompt([*prefix, query]), add_bos=True)])
    query_ids = torch.tensor([vocab.encode(Prompt([query]))])
    mask = torch.ones(1, 1 + gist.k + query_ids.shape[1], dtype=torch.long)
    best = [float("inf"), float("inf")]
    with torch.no_grad():
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(input_ids=full_ids)
            best[0] = min(best[0], time.perf_counter() - t0)
            kw = cache_kwargs(model, gist.cache(model))
            t0 = time.perf_counter()
            model(input_ids=query_ids, attention_mask=mask, **kw)
            best[1] = min(best[1], time.perf_counter() - t0)
    return best[0], best[1]


if __name__ == "__main__":
    main()
