"""`make demo`: a real photograph plus instructions through the shared vocabulary, end to end.

Grows with the toolkit. Today: tokenize the photo with the shipped image tokenizer (when the zoo
has one), lay text and image out in one id space, decode the ids back, and report what it cost.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from mmgist import ByteTokenizer, Prompt, SharedVocabulary, load_tokenizer
from mmgist.io import image_to_tensor, load_image, save_image
from mmgist.tokenizers.registry import list_zoo

OUT = Path("out/demo")


def sample_photo() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data" / "chelsea.png"  # a real photograph, bundled offline


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


if __name__ == "__main__":
    main()
