"""Metrics: PSNR by hand, SSIM against scikit-image's reference implementation, code usage."""

import math

import pytest
import torch

from mmgist.metrics import CodeUsage, psnr, rouge_l, ssim


def test_psnr_worked_example():
    a = torch.zeros(1, 3, 4, 4)
    b = torch.full((1, 3, 4, 4), 0.1)  # mse 0.01 -> 20 dB
    assert psnr(a, b).item() == pytest.approx(20.0, abs=1e-4)


def test_ssim_matches_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    torch.manual_seed(0)
    a = torch.rand(2, 3, 32, 40)
    b = (a + 0.1 * torch.randn_like(a)).clamp(0, 1)
    ours = ssim(a, b)
    for i in range(2):
        ref = metrics.structural_similarity(
            a[i].permute(1, 2, 0).double().numpy(),
            b[i].permute(1, 2, 0).double().numpy(),
            channel_axis=2,
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        assert ours[i].item() == pytest.approx(ref, abs=1e-4)
    assert ssim(a, a).min().item() == pytest.approx(1.0, abs=1e-6)


def test_code_usage_and_perplexity():
    u = CodeUsage(4)
    u.update(torch.tensor([[0, 1], [0, 1]]))
    assert u.usage == 0.5
    assert u.perplexity == pytest.approx(2.0)
    u.update(torch.tensor([2, 3, 2, 3]))
    assert u.usage == 1.0 and u.perplexity == pytest.approx(4.0)
    assert math.isfinite(CodeUsage(3).perplexity)


def test_colour_metrics_on_images_whose_answer_is_known():
    pytest.importorskip("skimage")
    from mmgist.metrics import chroma_ratio, ciede2000, grey_cast

    torch.manual_seed(0)
    x = torch.rand(2, 3, 8, 8)
    grey = x.mean(1, keepdim=True).expand(-1, 3, -1, -1)
    assert torch.allclose(ciede2000(x, x), torch.zeros(2))
    assert torch.allclose(chroma_ratio(x, x), torch.ones(2))
    assert (chroma_ratio(grey, x) < 0.01).all() and (grey_cast(grey) == 0).all()
    assert (ciede2000(grey, x) > 5).all()  # dropping the colour is visible
    red, pink = torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)
    red[:, 0], pink[:, 0], pink[:, 1:] = 1.0, 1.0, 0.5
    assert grey_cast(red).item() == pytest.approx(1.0)  # |1 - 0| + |0 - 0|
    assert chroma_ratio(pink, red).item() < 1


def test_rouge_l_worked_examples_and_symmetry():
    # LCS of "the cat sat on the mat" and "the cat is on the mat": the cat on the mat (5 of 6 words each)
    assert rouge_l("The cat sat on the mat.", "the cat is on the mat") == pytest.approx(5 / 6)
    assert rouge_l("a b c", "a b c") == 1 and rouge_l("a b", "c d") == 0
    assert rouge_l("", "") == 1 and rouge_l("", "a") == 0
    # precision 2/2, recall 2/4: F1 = 2/3; F1 is symmetric in its arguments
    assert rouge_l("a c", "a b c d") == pytest.approx(2 / 3) == rouge_l("a b c d", "a c")
    assert rouge_l("b a", "a b") == pytest.approx(0.5)  # order matters: a subsequence, not a bag of words


def test_hue_fidelity_sees_a_hue_rotation_and_a_washed_out_hue():
    import colorsys

    from mmgist.metrics import HUES, hue_fidelity

    # one saturated patch per hue bin's middle, as sRGB (hue angles in HSV are close enough to pick a bin)
    colours = [colorsys.hsv_to_rgb(h / 360, 0.9, 0.9) for h in range(0, 360, 15)]
    x = torch.tensor(colours, dtype=torch.float32)[:, :, None, None].expand(-1, 3, 8, 8).contiguous()
    same = hue_fidelity(x, x)
    assert [r["hue"] for r in same] == list(HUES)
    seen = [r for r in same if r["pixels"]]
    assert len(seen) >= 6 and all(abs(r["hue shift °"]) < 1e-6 and abs(r["chroma ratio"] - 1) < 1e-6 for r in seen)
    grey = x.mean(1, keepdim=True)
    washed = hue_fidelity(0.5 * x + 0.5 * grey, x)  # halfway to grey: chroma falls, hue stays about the same
    assert all(r["chroma ratio"] < 0.75 for r in washed if r["pixels"])
    shifted = hue_fidelity(x.roll(1, dims=0), x)  # every patch replaced by the one 15 HSV degrees before it
    assert all(r["hue shift °"] < 0 for r in shifted if r["pixels"])
