"""Ask the demo model about a photo: an image+text prompt through the processor, answered by generation.

    python examples/image_text_prompt.py [IMAGE] [--model models/demo-brightness] [--region "top left"]

The demo model was trained on mmgist.demo_task: it reports how bright a region of a reference photo is.
With no IMAGE a held-out bundled photograph is used (a 128x128 centre crop, the size it was trained on).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mmgist import MultimodalProcessor, generate, load_model
from mmgist.demo_task import CROP, INSTRUCTIONS, REGIONS, level
from mmgist.io import image_to_tensor, load_image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("image", nargs="?")
    ap.add_argument("--model", default="models/demo-brightness")
    ap.add_argument("--instruction", type=int, default=0, choices=range(len(INSTRUCTIONS)))
    args = ap.parse_args()

    if args.image:
        path = Path(args.image)
    else:
        from mmgist.datasets import photo_paths

        path = photo_paths()["coffee"]
    photo = image_to_tensor(load_image(path))
    top, left = (photo.shape[1] - CROP) // 2, (photo.shape[2] - CROP) // 2
    photo = photo[:, top : top + CROP, left : left + CROP]

    model, vocab = load_model(args.model)
    processor = MultimodalProcessor(vocab)
    instruction, words = INSTRUCTIONS[args.instruction]
    print(f"photo: {path.name} (centre {CROP}x{CROP}); instruction: {instruction!r}")
    for region in REGIONS:
        text = f"<image> {instruction} Q: {region}? A:"
        batch = processor(text=text, images=[photo], return_tensors="pt")
        answer = generate(model, vocab, vocab.decode(batch["input_ids"][0]), max_new_tokens=8).text().strip()
        truth = words[level(photo, region)]
        print(f"  {region:<13} model: {answer!r:<10} pixels say: {truth!r}")


if __name__ == "__main__":
    main()
