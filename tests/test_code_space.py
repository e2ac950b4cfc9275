"""The image tokenizer's code space (#31): the collapse check, the CIELAB colour term, the Euclidean lookup."""

import math

import pytest
import torch

from mmgist import create_tokenizer
from mmgist.tokenizers.code_space import CodeSpaceCollapsedError, check_code_space, code_space, r_squared
from mmgist.tokenizers.image import lab_term


def tiny(**kw):
    torch.manual_seed(0)
    tok = create_tokenizer("image-vq", preset="tiny", lookup="euclidean", code_dim=8, **kw)
    tok.train()(photos())  # one training-mode pass: k-means places the codes
    return tok.eval()


def photos(n: int = 4, side: int = 16, seed: int = 0) -> torch.Tensor:
    """(n, 3, side, side): smooth random colour fields, every hue present."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(side, side), mode="bilinear", align_corners=False)


def hue_rotated(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate RGB about the grey axis (a hue rotation that keeps grey grey)."""
    a = math.radians(degrees)
    c, s, k = math.cos(a), math.sin(a), 1 / math.sqrt(3)
    axis = torch.tensor([k, k, k])
    cross = torch.tensor([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rot = c * torch.eye(3) + s * cross + (1 - c) * torch.outer(axis, axis)
    return torch.einsum("ij,bjhw->bihw", rot, x).clamp(0, 1)


def test_the_collapse_check_fires_on_a_collapsed_model_and_not_on_a_healthy_one():
    healthy = tiny()
    space = code_space(healthy, photos(8))
    assert space.live_dims >= 4 and len(space.eigenvalues) == 8
    check_code_space(space, min_live_dims=4)  # quiet
    collapsed = tiny()
    last = [m for m in collapsed.encoder.modules() if isinstance(m, torch.nn.Conv2d)][-1]  # outputs z (8 wide)
    with torch.no_grad():  # z squeezed to one channel: one live dimension (the lookup is z itself at code_dim 8)
        last.weight[1:] *= 1e-3
        last.bias[1:] = 0
    space = code_space(collapsed, photos(8))
    assert space.live_dims == 1
    with pytest.raises(CodeSpaceCollapsedError, match=r"collapsed at step 120: 1 live dimension\(s\) of the lookup, 4"):
        check_code_space(space, min_live_dims=4, step=120)
    assert min(space.r2["a*"], space.r2["b*"]) < 0.5  # one channel cannot carry both colour axes
    with pytest.raises(CodeSpaceCollapsedError, match=r"colour R\^2 0\.\d\d \(a\* 0\.\d\d, b\* 0\.\d\d\), 0.5 asked"):
        check_code_space(space, min_colour_r2=0.5)
    check_code_space(space)  # nothing asked: quiet
    healthy_r2 = code_space(healthy, photos(8)).r2
    check_code_space(code_space(healthy, photos(8)), min_colour_r2=min(healthy_r2["a*"], healthy_r2["b*"]) * 0.99)
    with pytest.raises(ValueError, match=r"min_colour_r2 must be in \(0, 1\), got 1.5"):
        check_code_space(space, min_colour_r2=1.5)


def test_training_stops_with_the_figures_once_the_code_space_collapses(tmp_path, monkeypatch):
    import mmgist.tokenizers.train_image as train_image
    from mmgist.io import save_image

    for i, image in enumerate(photos(3, side=32)):
        save_image(image, tmp_path / "data" / f"{i}.png")
    monkeypatch.setattr(train_image, "WATCH_FROM", 1)
    kw = {"preset": "tiny", "steps": 4, "batch_size": 2, "crop_size": 16, "progress": False, "lookup": "euclidean"}
    done = train_image.train_image_tokenizer(tmp_path / "data", tmp_path / "ok", **kw)
    assert {"live_dims", "r2_a", "r2_b", "r2_L", "eig_0"} <= set(done.train.history[-1])
    with pytest.raises(CodeSpaceCollapsedError, match="live dimension"):  # 9 of an 8-d lookup: never met
        train_image.train_image_tokenizer(tmp_path / "data", tmp_path / "no", min_live_dims=9, **kw)
    assert not (tmp_path / "no").exists()
    with pytest.raises(CodeSpaceCollapsedError, match="colour R"):  # 0.999 of a* and b* from a 4-step model: not met
        train_image.train_image_tokenizer(tmp_path / "data", tmp_path / "grey", min_colour_r2=0.999, **kw)
    with pytest.raises(ValueError, match="min_colour_r2"):
        train_image.train_image_tokenizer(tmp_path / "data", tmp_path / "bad", min_colour_r2=0, **kw)


def test_the_command_line_reports_a_stop_on_collapse_as_its_figures_not_as_a_bug():
    from mmgist.cli import error_line

    stop = CodeSpaceCollapsedError("the code space collapsed at step 50: colour R^2 0.22")
    assert error_line(stop) == "the code space collapsed at step 50: colour R^2 0.22"


def test_r_squared_is_one_for_a_linear_target_and_near_zero_for_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 4, generator=g)
    y = torch.stack([x @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 3, torch.randn(500, generator=g)], 1)
    r2 = r_squared(x, y)
    assert r2[0] > 0.999 and abs(r2[1]) < 0.05


def test_the_lab_term_is_zero_for_identical_images_and_grows_with_a_hue_rotation():
    x = photos(4)
    assert lab_term(x, x).item() == 0.0
    terms = [lab_term(hue_rotated(x, d), x).item() for d in (10, 45, 120)]
    assert 0 < terms[0] < terms[1] < terms[2]
    grey = x.mean(1, keepdim=True).expand_as(x)  # lightness kept, colour gone: the term sees it
    assert lab_term(grey, x).item() > terms[0]


def test_the_euclidean_lookup_with_the_latent_term_keeps_more_of_the_latent(tmp_path):
    from mmgist.train import TrainConfig, fit

    data = photos(8)
    errors = {}
    for lookup, weight in (("cosine", 0.0), ("euclidean", 1.0)):
        torch.manual_seed(0)
        tok = create_tokenizer("image-vq", preset="tiny", lookup=lookup, latent_weight=weight, code_dim=4)
        fit(tok, lambda s, r: data, TrainConfig(steps=30, lr=3e-3, warmup_steps=0), tmp_path / lookup, progress=False)
        with torch.no_grad():
            errors[lookup] = tok.eval().quantize(data).latent.item()
    assert errors["euclidean"] < 0.5 * errors["cosine"], errors


def test_v2_configs_load_as_cosine_without_the_new_terms():
    from mmgist.tokenizers.image import ImageVQTokenizer

    saved = {"preset": "tiny", "l1_weight": 1.0, "colour_weight": 1.0, "edge_weight": 0.5, "mse_weight": 0.0}
    config = ImageVQTokenizer.make_config(**ImageVQTokenizer.upgrade_config(saved))
    assert (config.lookup, config.latent_weight, config.lab_weight) == ("cosine", 0.0, 0.0)
    with pytest.raises(ValueError, match=r"lookup 'dot'"):
        create_tokenizer("image-vq", preset="tiny", lookup="dot")


def test_the_spread_term_is_zero_for_whitened_vectors_large_for_collapsed_ones_and_scale_free():
    from mmgist.tokenizers.image import spread_term

    g = torch.Generator().manual_seed(0)
    v = torch.randn(512, 8, generator=g, dtype=torch.float64)
    v = v - v.mean(0)
    white = v @ torch.linalg.inv(torch.linalg.cholesky(v.T @ v / 511)).T  # covariance exactly the identity
    assert spread_term(white).item() < 1e-6
    collapsed = v[:, :1] * torch.ones(1, 8, dtype=torch.float64) + 1e-3 * v  # one direction holds nearly all
    assert spread_term(collapsed).item() > 0.5
    torch.testing.assert_close(spread_term(3 * collapsed), spread_term(collapsed))
    with pytest.raises(ValueError, match=r"spread_term needs \(N >= 2, d >= 2\) vectors, got shape \(1, 8\)"):
        spread_term(v[:1])


def test_the_spread_term_keeps_more_of_the_lookups_variance_out_of_its_first_direction(tmp_path):
    """Trained the same way, a tiny tokenizer with the spread term puts a smaller share of its lookup vectors'
    variance in the largest direction than one without it (v1 and v2 collapsed to 3 of 8 dimensions: #31)."""
    from mmgist.train import TrainConfig, fit

    data = photos(8)
    first = {}
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        tok = create_tokenizer("image-vq", preset="tiny", lookup="euclidean", code_dim=4, spread_weight=weight)
        fit(tok, lambda s, r: data, TrainConfig(steps=30, lr=3e-3, warmup_steps=0), tmp_path / str(weight),
            progress=False)  # fmt: skip
        space = code_space(tok, data)
        first[weight] = space.eigenvalues[0] / sum(space.eigenvalues)
    assert first[1.0] < first[0.0] - 0.1, first
