"""image-vq on the tiny preset: shapes, the two decode paths, input policies, errors, save/load, training."""

import pytest
import torch
from PIL import Image as PILImage

from mmgist import create_tokenizer, load_tokenizer
from mmgist.tokenizers.image import ImageVQTokenizer

QUANTIZERS = ["vq", "fsq", "plain-vq"]


def tiny(quantizer="vq", **kw) -> ImageVQTokenizer:
    torch.manual_seed(0)
    return create_tokenizer("image-vq", preset="tiny", quantizer=quantizer, **kw).eval()


@pytest.mark.parametrize("quantizer", QUANTIZERS)
def test_shapes_and_dtypes(quantizer):
    tok = tiny(quantizer)
    assert tok.factor == 2
    codes = tok.encode(torch.rand(3, 8, 12))
    assert codes.shape == (4, 6) and codes.dtype == torch.long
    assert int(codes.min()) >= 0 and int(codes.max()) < tok.codebook_size
    batch = tok.encode(torch.rand(5, 3, 8, 12))
    assert batch.shape == (5, 4, 6)
    assert tok.decode(codes).shape == (3, 8, 12)
    images = tok.decode(batch)
    assert images.shape == (5, 3, 8, 12) and images.min() >= 0 and images.max() <= 1
    pil = tok.decode_to_pil(codes)
    assert pil.size == (12, 8)
    assert tok.tokens_per_image(256, 256) == 128 * 128


@pytest.mark.parametrize("quantizer", QUANTIZERS)
def test_decode_from_indices_equals_decode_from_quantized_vectors(quantizer):
    tok = tiny(quantizer)
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        zq, codes, _ = tok.quantize(x)
        from_vectors = tok.decode_latents(zq).clamp(0, 1)
    assert torch.allclose(tok.decode(codes), from_vectors, atol=1e-5)
    assert torch.allclose(tok.codes_to_latents(codes), zq, atol=1e-5)


def test_pil_list_and_uint8_inputs_agree():
    tok = tiny()
    x = (torch.rand(3, 8, 8) * 255).round().to(torch.uint8)
    pil = PILImage.fromarray(x.permute(1, 2, 0).numpy())
    expected = tok.encode(x)
    assert torch.equal(tok.encode(pil), expected)
    assert torch.equal(tok.encode([pil, pil]), torch.stack([expected, expected]))
    assert torch.equal(tok.encode(x.float() / 255), expected)
    gray = pil.convert("L")
    assert tok.encode(gray).shape == (4, 4)
    assert tok.encode(pil.convert("RGBA")).shape == (4, 4)


@pytest.mark.parametrize("fit, size", [("pad", (4, 6)), ("crop", (3, 5)), ("resize", (4, 6))])
def test_sizes_not_divisible_by_the_factor(fit, size):
    tok = tiny()
    assert tok.encode(torch.rand(3, 7, 11), fit=fit).shape == size
    assert tok.tokens_per_image(7, 11, fit=fit) == size[0] * size[1]
    with pytest.raises(ValueError, match=r"image size 11x7 is not a multiple of 2"):
        tok.encode(torch.rand(3, 7, 11), fit="error")


@pytest.mark.parametrize(
    "images, error, message",
    [
        (torch.full((3, 4, 4), float("nan")), ValueError, "NaN or inf"),
        (torch.rand(3, 4, 4) * 3, ValueError, r"must lie in \[0, 1\]"),
        (torch.rand(2, 4, 4), ValueError, r"got \(1, 2, 4, 4\)"),
        (torch.zeros(3, 4, 4, dtype=torch.int32), TypeError, "uint8"),
        ([torch.rand(3, 4, 4), torch.rand(3, 6, 4)], ValueError, r"must share a size, got \(H, W\) sizes"),
        ([], ValueError, "empty list"),
        (torch.rand(3, 0, 4), ValueError, "zero size"),
    ],
)
def test_bad_images_are_refused(images, error, message):
    with pytest.raises(error, match=message):
        tiny().encode(images)


def test_bad_codes_are_refused():
    tok = tiny()
    with pytest.raises(ValueError, match=r"code 32 is outside the codebook \[0, 32\)"):
        tok.decode(torch.full((2, 2), 32))
    with pytest.raises(ValueError, match=r"non-empty 2-d tensor, got shape \(4,\)"):
        tok.decode(torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown image-vq preset 'f99'"):
        create_tokenizer("image-vq", preset="f99")
    with pytest.raises(ValueError, match="unknown quantizer 'lfq'"):
        create_tokenizer("image-vq", quantizer="lfq")


@pytest.mark.parametrize("quantizer", QUANTIZERS)
def test_save_load_gives_identical_outputs(quantizer, tmp_path):
    tok = tiny(quantizer)
    tok.train()
    tok(torch.rand(4, 3, 8, 8))  # one training forward: k-means init and EMA buffers get values
    tok.eval()
    x = torch.rand(2, 3, 8, 8)
    tok.save_pretrained(tmp_path)
    loaded = load_tokenizer(tmp_path)
    codes = tok.encode(x)
    assert torch.equal(loaded.encode(x), codes)
    assert torch.equal(loaded.decode(codes), tok.decode(codes))
    assert loaded.fingerprint() == tok.fingerprint()


def test_a_few_training_steps_lower_the_loss():
    from mmgist.train import TrainConfig, fit

    tok = tiny().train()
    data = torch.rand(8, 3, 8, 8).cumsum(-1) / 8  # smooth-ish images, one fixed batch

    def loss():
        with torch.no_grad():
            return tok(data).loss.item()

    before = loss()
    fit(
        tok,
        lambda step, rank: data,
        TrainConfig(steps=40, lr=3e-3, warmup_steps=0, checkpoint_every=40),
        out_dir=_tmp(),
        progress=False,
    )
    assert loss() < 0.7 * before


def _tmp():
    import tempfile

    return tempfile.mkdtemp()


def test_explicit_fields_override_the_preset():
    from mmgist.tokenizers.image import ImageVQConfig

    assert ImageVQConfig(preset="tiny").codebook_size == 32
    assert ImageVQConfig(preset="tiny", codebook_size=4096).codebook_size == 4096
    assert ImageVQConfig(preset="tiny", quantizer="fsq", fsq_levels=(8, 8, 8, 8)).codebook_size == 4096
    assert ImageVQConfig(preset="f8").codebook_size == 4096 and ImageVQConfig(preset="f8").channels[0] == 48
