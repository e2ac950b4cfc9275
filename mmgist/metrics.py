"""Quality measures shared by tokenizers, benchmarks and the gist report.

    psnr(a, b)   images (B, 3, H, W) in [0, 1] -> (B,) dB
    ssim(a, b)   images (B, 3, H, W) in [0, 1] -> (B,) mean SSIM (Wang et al. 2004: 11x11 Gaussian, sigma 1.5)
    CodeUsage    running histogram of codes: share of the codebook used, and perplexity
    ciede2000(a, b)      images (B, 3, H, W) -> (B,) mean CIEDE2000 colour difference (scikit-image's)
    chroma_ratio(a, b)   images -> (B,) mean CIELAB chroma of a / that of b (1 = colours as saturated)
    grey_cast(a)         images -> (B,) mean |R-G| + |G-B| in [0, 2] (0 for a grey image)
    rouge_l(a, b)        two texts -> ROUGE-L F1 over lower-cased words, in [0, 1]
    mel_spectrogram(x, rate)     waveforms (..., S) -> log-mel (..., mels, frames) (torch.stft, torchaudio's filters)
    multiscale_mel_l1(a, b, rate)  waveforms -> scalar: mean L1 of log-mels over several window sizes (a loss)
    mel_distance(a, b, rate)     waveforms (B, 1, S) -> (B,) the same per item (the benchmark's mel distance)
    si_snr(a, b)         waveforms (B, 1, S) -> (B,) scale-invariant SNR of a against reference b, in dB
    stoi(a, b, rate)     one waveform each -> short-time objective intelligibility in [0, 1] (pystoi)

SSIM is written here (30 lines) rather than pulled from torchmetrics, which would be a heavy
dependency for one function; a test checks it against scikit-image's implementation. ROUGE-L is the
longest common subsequence of words (20 lines); the `rouge-score` package would bring nltk and absl for it.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F


def psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, in dB. a, b: (B, C, H, W)."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(peak**2 / mse.clamp_min(1e-12))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).float()  # (size, size)


def ssim(a: torch.Tensor, b: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """Mean structural similarity per image, channels averaged. a, b: (B, C, H, W), H, W >= 11."""
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"ssim needs two (B, C, H, W) tensors of one shape, got {tuple(a.shape)}, {tuple(b.shape)}")
    c = a.shape[1]
    w = _gaussian_window().to(a.device)[None, None].repeat(c, 1, 1, 1)  # (C, 1, 11, 11), depthwise
    a, b = a.double(), b.double()
    w = w.double()

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, w, groups=c)  # "valid" filtering, as in the reference implementation

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1).float()


def _lab(x: torch.Tensor):
    """(B, 3, H, W) in [0, 1] -> numpy (B, H, W, 3) CIELAB (D65), via scikit-image."""
    try:
        from skimage.color import rgb2lab
    except ImportError as e:
        raise ImportError("colour metrics use scikit-image: pip install 'mmgist[train]'") from e
    return rgb2lab(x.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy(), channel_axis=-1)


def ciede2000(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean CIEDE2000 difference per image (about 1 = just noticeable; 2-10 = visible at a glance)."""
    from skimage.color import deltaE_ciede2000

    return torch.from_numpy(deltaE_ciede2000(_lab(a), _lab(b), channel_axis=-1).reshape(len(a), -1).mean(1)).float()


def chroma(x: torch.Tensor) -> torch.Tensor:
    """Mean CIELAB chroma sqrt(a*^2 + b*^2) per image, (B,)."""
    lab = torch.from_numpy(_lab(x))
    return lab[..., 1:].pow(2).sum(-1).sqrt().flatten(1).mean(1).float()


def chroma_ratio(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Chroma of a over chroma of b per image: below 1, a's colours are washed out."""
    return chroma(a) / chroma(b).clamp_min(1e-6)


HUES = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "magenta")
HUE_EDGES = (0, 45, 75, 100, 165, 215, 265, 305, 345)  # CIELAB hue angle h_ab in degrees, bins of HUES (red wraps)


def hue_bins(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, 3, H, W) in [0, 1] -> per pixel (N,): CIELAB chroma, hue angle in degrees, bin in HUES."""
    lab = torch.from_numpy(_lab(x)).reshape(-1, 3).double()
    c = lab[:, 1:].pow(2).sum(-1).sqrt()
    h = torch.rad2deg(torch.atan2(lab[:, 2], lab[:, 1])) % 360
    edges = torch.tensor(HUE_EDGES[1:-1], dtype=h.dtype)
    bins = torch.bucketize(h, edges, right=True)  # 0 .. 7 for h in [0, 345); 8 for [345, 360): red again
    return c, h, torch.where(bins == len(HUES), 0, bins)


def hue_fidelity(recon: torch.Tensor, target: torch.Tensor, min_chroma: float = 15.0) -> list[dict]:
    """Per hue of HUES, over the target's pixels of at least `min_chroma`: the pixels counted, the mean hue shift
    in degrees (recon's hue minus the target's, wrapped to [-180, 180]) and the chroma ratio (mean recon chroma /
    mean target chroma; below 1 washed out). A hue with no such pixel gets None."""
    c_t, h_t, bins = hue_bins(target)
    c_r, h_r, _ = hue_bins(recon)
    rows = []
    for i, name in enumerate(HUES):
        m = (bins == i) & (c_t >= min_chroma)
        n = int(m.sum())
        shift = ((h_r[m] - h_t[m] + 180) % 360 - 180).mean().item() if n else None
        ratio = (c_r[m].mean() / c_t[m].mean()).item() if n else None
        rows.append({"hue": name, "pixels": n, "hue shift °": shift, "chroma ratio": ratio})
    return rows


def grey_cast(x: torch.Tensor) -> torch.Tensor:
    """Mean |R - G| + |G - B| per image, in [0, 2] for images in [0, 1]: how far from grey."""
    return ((x[:, 0] - x[:, 1]).abs() + (x[:, 1] - x[:, 2]).abs()).flatten(1).mean(1)


class CodeUsage:
    """Counts codes seen; `usage` = share of the codebook seen at least once, `perplexity` = exp(entropy)."""

    def __init__(self, codebook_size: int) -> None:
        self.counts = torch.zeros(codebook_size, dtype=torch.long)

    def update(self, codes: torch.Tensor) -> None:
        self.counts += torch.bincount(codes.reshape(-1).cpu(), minlength=len(self.counts))

    @property
    def usage(self) -> float:
        return (self.counts > 0).float().mean().item()

    @property
    def perplexity(self) -> float:
        p = self.counts.double() / max(int(self.counts.sum()), 1)
        p = p[p > 0]
        return math.exp(-(p * p.log()).sum().item())


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 (Lin 2004, beta 1): the longest common subsequence of the two texts' lower-cased words
    (runs of letters, digits and underscores: regex \\w+), as a share of each, combined harmonically.
    Two empty texts score 1."""
    import re

    a, b = (re.findall(r"\w+", t.lower()) for t in (candidate, reference))
    if not a or not b:
        return float(not a and not b)
    prev = [0] * (len(b) + 1)
    for x in a:  # one row of the LCS table at a time
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


MEL_SCALES = ((2048, 128), (1024, 64), (512, 64), (256, 32), (128, 16))  # (window, mel bins): DAC-like, at 16 kHz


@functools.lru_cache(maxsize=32)
def _mel_filters(n_fft: int, n_mels: int, rate: int) -> torch.Tensor:
    import torchaudio.functional as AF

    return AF.melscale_fbanks(n_fft // 2 + 1, 0.0, rate / 2, n_mels, rate, norm="slaney", mel_scale="slaney")


def mel_spectrogram(x: torch.Tensor, rate: int, n_fft: int = 1024, n_mels: int = 80) -> torch.Tensor:
    """log10 of the mel power spectrogram (floor 1e-5): (..., S) -> (..., n_mels, frames), hop n_fft / 4, Hann."""
    shape = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1]).float()
    spec = torch.stft(
        flat, n_fft, n_fft // 4, window=torch.hann_window(n_fft, device=x.device), center=True,
        pad_mode="constant", return_complex=True,
    ).abs().pow(2)  # fmt: skip
    mel = torch.einsum("bft,fm->bmt", spec, _mel_filters(n_fft, n_mels, int(rate)).to(x.device))
    return mel.clamp_min(1e-5).log10().reshape(*shape, n_mels, -1)


def mel_distance(
    a: torch.Tensor, b: torch.Tensor, rate: int, scales: tuple[tuple[int, int], ...] = MEL_SCALES
) -> torch.Tensor:
    """Mean L1 between log-mel spectrograms over `scales`, per item: (B, ..., S) -> (B,)."""
    return sum((mel_spectrogram(a, rate, n, m) - mel_spectrogram(b, rate, n, m)).abs().flatten(1).mean(1)
               for n, m in scales) / len(scales)  # fmt: skip


def multiscale_mel_l1(
    a: torch.Tensor, b: torch.Tensor, rate: int, scales: tuple[tuple[int, int], ...] = MEL_SCALES
) -> torch.Tensor:
    """The batch mean of `mel_distance`: the audio tokenizers' reconstruction loss."""
    return mel_distance(a, b, rate, scales).mean()


def si_snr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant signal-to-noise ratio in dB per item: (B, ..., S) -> (B,). Both are made zero-mean."""
    est = estimate.flatten(1).double()
    ref = reference.flatten(1).double()
    est, ref = est - est.mean(1, keepdim=True), ref - ref.mean(1, keepdim=True)
    target = (est * ref).sum(1, keepdim=True) / (ref.pow(2).sum(1, keepdim=True) + eps) * ref
    noise = est - target
    return (10 * torch.log10((target.pow(2).sum(1) + eps) / (noise.pow(2).sum(1) + eps))).float()


def stoi(estimate: torch.Tensor, reference: torch.Tensor, rate: int) -> float | None:
    """Short-time objective intelligibility (Taal et al. 2011, via pystoi) of one waveform (S,) or (1, S).

    None when the reference holds too little non-silent speech to measure (pystoi needs 30 frames of
    384 ms after dropping silent ones; it would return 1e-5, which would drag an average down)."""
    try:
        from pystoi import stoi as _stoi
    except ImportError as e:  # pragma: no cover - a dev dependency
        raise ImportError("STOI needs the pystoi package: pip install pystoi") from e
    est, ref = estimate.reshape(-1).double().numpy(), reference.reshape(-1).double().numpy()
    n = min(len(est), len(ref))
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(_stoi(ref[:n], est[:n], int(rate), extended=False))
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        return None
    return value
