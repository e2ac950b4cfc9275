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
        zq, codes, *_ = tok.quantize(x)
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
    with pytest.raises(ValueError, match=r"non-empty 2-d or 3-d tensor, got shape \(4,\)"):
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


def test_batches_are_encoded_in_chunks_that_agree_with_one_at_a_time(monkeypatch):
    import mmgist.tokenizers.image as image

    tok = tiny()
    x = torch.rand(5, 3, 8, 12)
    monkeypatch.setattr(image, "CHUNK_PIXELS", 2 * 8 * 12)  # chunks of two images
    codes = tok.encode(x)
    assert torch.equal(codes, torch.stack([tok.encode(im) for im in x]))
    assert torch.allclose(tok.decode(codes), torch.stack([tok.decode(c) for c in codes]), atol=1e-6)
    assert image._chunks(x, (8, 12))[0].shape[0] == 2 and len(image._chunks(x, (8, 12))) == 3
    assert len(image._chunks(x, (4096, 4096))) == 5  # never fewer than one image a chunk


@pytest.mark.parametrize("padding", ["replicate", "reflect", "zeros"])
def test_padding_modes_work_down_to_the_smallest_image(padding):
    tok = tiny(padding=padding)
    size = 2 if padding != "reflect" else 4  # reflect padding needs 2 pixels at every level
    assert tok.decode(tok.encode(torch.rand(3, size, size))).shape == (3, size, size)


def test_an_unknown_padding_is_refused():
    with pytest.raises(ValueError, match="unknown padding 'circle'"):
        tiny(padding="circle")


def test_a_v1_config_loads_with_v1_padding_and_fingerprint(tmp_path):
    import dataclasses
    import json

    from mmgist.tokenizers.image import LEGACY

    tok = tiny(**LEGACY).train()
    tok(torch.rand(4, 3, 8, 8))  # k-means init: the codebook gets values
    tok.eval().save_pretrained(tmp_path)
    header = json.loads((tmp_path / "config.json").read_text())
    for key in LEGACY:  # as a v1 file: the fields did not exist
        del header["config"][key]
    (tmp_path / "config.json").write_text(json.dumps(header))
    loaded = load_tokenizer(tmp_path)
    assert loaded.config.padding == "zeros" and loaded.config.mse_weight == 1.0
    assert loaded.fingerprint() == tok.fingerprint()
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(loaded.encode(x), tok.encode(x))
    v2 = tiny()
    assert v2.config.padding == "replicate" and v2.fingerprint() != tok.fingerprint()
    assert set(LEGACY) <= {f.name for f in dataclasses.fields(v2.config)}


def test_reconstruction_terms_see_what_they_are_for():
    from mmgist.tokenizers.image import reconstruction_terms

    x = torch.rand(2, 3, 16, 16) * 0.8
    assert all(v.item() == 0 for v in reconstruction_terms(x, x).values())
    shifted = reconstruction_terms(x + 0.1, x)  # a colour cast: no edges change
    assert shifted["colour"] > 0.05 and shifted["edge"] < 0.02
    noisy = reconstruction_terms(x + 0.1 * torch.randn_like(x), x)  # noise: edges change, local means barely
    assert noisy["edge"] > 2 * noisy["colour"]


def test_the_loss_uses_the_configured_weights():
    x = torch.rand(2, 3, 8, 8)
    torch.manual_seed(0)
    mse_only = tiny(l1_weight=0.0, colour_weight=0.0, edge_weight=0.0, mse_weight=1.0).train()
    out = mse_only(x)
    assert out.loss.item() == pytest.approx(out.metrics["mse"] + out.metrics["commit"], rel=1e-5)


def test_init_copies_encoder_and_decoder_and_the_codebook_only_of_the_same_kind(tmp_path):
    from mmgist.tokenizers.train_image import _init_from

    trained = tiny().train()
    trained(torch.rand(4, 3, 8, 8))  # k-means init
    trained.eval().save_pretrained(tmp_path / "t")
    same = create_tokenizer("image-vq", preset="tiny")
    _init_from(same, tmp_path / "t")
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in same.state_dict().items())
    other = create_tokenizer("image-vq", preset="tiny", quantizer="plain-vq")
    copied = _init_from(other, tmp_path / "t")
    assert copied and not any(k.startswith("quantizer.") for k in copied)
    assert torch.equal(other.encoder.net[0].weight, trained.encoder.net[0].weight)
    with pytest.raises(ValueError, match="shares no encoder or decoder"):
        _init_from(create_tokenizer("image-vq", preset="f8"), tmp_path / "t")


@pytest.mark.parametrize("quantizer, lookup", [("vq", "cosine"), ("vq", "euclidean"), ("plain-vq", "euclidean")])
def test_continuous_latents_are_what_the_codes_decode_to_when_the_codebook_holds_the_lookup_vectors(quantizer, lookup):
    """continuous_latents skips only the rounding: with every lookup vector of the image in the codebook, the codes'
    latents equal them (the free-input benchmark starts from these)."""
    tok = tiny(quantizer, lookup=lookup)
    x = torch.rand(1, 3, 8, 4)
    v = tok.lookup_latents(x).detach()  # (8 patches, d)
    with torch.no_grad():
        tok.quantizer._codebook.embed[0] = v[torch.arange(tok.codebook_size) % len(v)]
    latents = tok.continuous_latents(x)
    assert latents.shape == (1, tok.config.z_dim, 4, 2)
    torch.testing.assert_close(tok.codes_to_latents(tok.encode(x)), latents, atol=1e-5, rtol=1e-4)
