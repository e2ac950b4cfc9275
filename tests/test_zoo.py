"""The trained tokenizers shipped in tokenizers/: each loads, has its card, stays small, and works."""

from pathlib import Path

import pytest
import torch

from mmgist import load_tokenizer
from mmgist.io import image_to_tensor, load_image
from mmgist.metrics import psnr
from mmgist.tokenizers.registry import list_zoo

ZOO = Path(__file__).resolve().parents[1] / "tokenizers"
SHIPPED = sorted(p.name for p in ZOO.iterdir() if (p / "config.json").is_file()) if ZOO.is_dir() else []


def test_the_image_tokenizers_are_shipped():
    # v1 (the default, and the demo model's), the colour-augmented v2 candidate, and v2's plain-VQ baseline
    assert {"image-vq-f8", "image-vq-f8-plain", "image-vq-f8-v2"} <= set(SHIPPED) <= set(list_zoo())
    assert load_tokenizer("image-vq-f8").config.padding == "zeros"
    assert load_tokenizer("image-vq-f8-v2").config.padding == "replicate"
    assert load_tokenizer("image-vq-f8-plain").config.quantizer == "plain-vq"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_folder_is_complete_and_small(name):
    folder = ZOO / name
    assert (folder / "model.safetensors").stat().st_size < 20 * 2**20
    card = (folder / "README.md").read_text()
    assert "## Measured" in card and "PSNR" in card
    assert (folder / "training.json").is_file()
    assert load_tokenizer(name).fingerprint() == load_tokenizer(folder).fingerprint()


def test_the_v2_card_holds_the_benchmark_and_the_side_by_side_picture():
    card = (ZOO / "image-vq-f8-v2" / "README.md").read_text()
    assert "<!-- benchmark:start -->" in card and "image-vq-f8-plain" in card and "WebP" in card
    assert (ZOO / "image-vq-f8-v2" / "heldout.png").is_file() and "heldout.png" in card


def _heldout_crop(name: str) -> torch.Tensor:
    from mmgist.datasets import HELDOUT, photo_paths

    assert name in HELDOUT  # never seen in training by any shipped tokenizer
    return image_to_tensor(load_image(photo_paths()[name]))[:, :256, :256]


def test_image_vq_f8_reconstructs_held_out_photos():
    from mmgist.metrics import chroma_ratio, ciede2000

    tok = load_tokenizer("image-vq-f8")
    photos = torch.stack([_heldout_crop(n) for n in ("chelsea", "coffee", "astronaut")])
    codes = tok.encode(photos)
    assert codes.shape == (3, 32, 32)
    recon = tok.decode(codes)
    assert psnr(recon, photos).mean().item() > PSNR_FLOOR
    assert ciede2000(recon, photos).mean().item() < DELTA_E_CEILING
    assert 0.8 < chroma_ratio(recon, photos).median().item() < 1.2
    assert torch.equal(tok.encode(recon), tok.encode(recon))  # deterministic


def test_v2_keeps_colours_saturated():
    from mmgist.metrics import chroma_ratio

    tok = load_tokenizer("image-vq-f8-v2")
    photos = torch.stack([_heldout_crop(n) for n in ("chelsea", "coffee", "astronaut")])
    assert 0.95 < chroma_ratio(tok.decode(tok.encode(photos)), photos).median().item() < 1.2  # measured 1.09


def test_grey_photos_come_back_grey():
    from mmgist.metrics import grey_cast

    tok = load_tokenizer("image-vq-f8")
    photo = _heldout_crop("chelsea")
    grey = (0.299 * photo[0] + 0.587 * photo[1] + 0.114 * photo[2]).expand(3, -1, -1)
    assert grey_cast(tok.decode(tok.encode(grey))[None]).item() * 255 < GREY_CAST_CEILING


def test_codes_barely_depend_on_the_thread_count():
    tok = load_tokenizer("image-vq-f8")
    photo = _heldout_crop("astronaut")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = tok.encode(photo)
        torch.set_num_threads(2)
        two = tok.encode(photo)
    finally:
        torch.set_num_threads(threads)
    assert (one != two).float().mean().item() <= 0.005  # float rounding differs with threads: near-ties may flip
    if not torch.equal(one, two):
        assert psnr(tok.decode(one)[None], tok.decode(two)[None]).item() > 40  # and the flips decode alike


# Bounds for image-vq-f8 on the bundled held-out crops above (chelsea, coffee, astronaut; top-left
# 256x256), measured: PSNR 23.6 dB, CIEDE2000 7.4, chroma ratio 0.96, grey cast 2.3/255 (chelsea).
PSNR_FLOOR = 22.5
DELTA_E_CEILING = 8.5
GREY_CAST_CEILING = 3.5


def test_demo_model_loads_and_its_prefix_matters(tmp_path):
    from mmgist import load_model
    from mmgist.datasets import split_photos
    from mmgist.demo_task import evaluate, make_samples

    model, vocab = load_model(Path(__file__).resolve().parents[1] / "models" / "demo-brightness")
    samples = make_samples(split_photos(tmp_path)[1], 8, seed=2)  # crops of the held-out photos
    full = evaluate(model, vocab, samples)
    bare = evaluate(model, vocab, samples, with_prefix=False, reference=full.probs)
    assert full.accuracy > bare.accuracy + 0.1  # measured when shipped: 0.50 vs 0.33 on these 40 queries
    assert bare.option_kl > 0.5
