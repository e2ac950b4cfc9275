"""Training and held-out data that install offline: sample photographs bundled with scikit-image and scikit-learn.

    photo_paths()              every bundled photograph, by name
    split_photos(out)          writes out/train and out/heldout (PNG copies), returns both folders
    RandomCrops(folder, 64)    step-indexed random crops: crops(step, rank, batch) is a pure function

The held-out set (HELDOUT) is never used for training: the benchmarks and cards measure on it.
Both motorcycle photos are held out together, since they are a stereo pair of one scene.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .io import image_to_tensor, load_image, save_image
from .storage import PathLike

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
# Photographs (and photo-like scans) bundled with scikit-image; charts, masks and test patterns are left out.
SKIMAGE_PHOTOS = ("astronaut", "brick", "camera", "cell", "chelsea", "clock_motion", "coffee", "coins", "grass",
                  "gravel", "hubble_deep_field", "ihc", "microaneurysms", "moon", "motorcycle_left",
                  "motorcycle_right", "page", "retina", "rocket", "text")  # fmt: skip
SKLEARN_PHOTOS = ("china", "flower")
HELDOUT = ("astronaut", "chelsea", "coffee", "motorcycle_left", "motorcycle_right")


def photo_paths() -> dict[str, Path]:
    """Name -> file of every bundled photograph (needs the `train` extra: scikit-image, scikit-learn)."""
    try:
        import skimage
        import sklearn.datasets
    except ImportError as e:
        raise ImportError(
            "the bundled photographs come with scikit-image and scikit-learn: pip install 'mmgist[train]'"
        ) from e
    sk = Path(skimage.__file__).parent / "data"
    skl = Path(sklearn.datasets.__file__).parent / "images"
    paths = {}
    for name in SKIMAGE_PHOTOS:
        found = [p for p in sk.glob(f"{name}.*") if p.suffix in IMAGE_SUFFIXES]
        if found:
            paths[name] = found[0]
    for name in SKLEARN_PHOTOS:
        paths[name] = skl / f"{name}.jpg"
    return paths


def split_photos(out: PathLike) -> tuple[Path, Path]:
    """Write the bundled photos as PNGs into out/train and out/heldout; returns the two folders."""
    out = Path(out)
    for name, path in photo_paths().items():
        target = out / ("heldout" if name in HELDOUT else "train") / f"{name}.png"
        if not target.exists():
            save_image(load_image(path), target)
    return out / "train", out / "heldout"


def image_files(folder: PathLike) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {str(folder)!r} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"image folder {str(folder)!r} has no images (looked for {', '.join(IMAGE_SUFFIXES)})")
    return files


class RandomCrops:
    """Random square crops (with horizontal flips) from every image in a folder, held in memory.

    `crops(step, rank, batch_size)` depends only on its arguments and the seed, so a resumed or
    distributed run sees exactly the batches an uninterrupted single run would have drawn for it.
    Images smaller than the crop are upscaled to fit. Larger images are drawn more often (by area).
    """

    def __init__(self, folder: PathLike, crop_size: int, seed: int = 0) -> None:
        self.crop_size, self.seed = crop_size, seed
        self.images = [self._fit(image_to_tensor(load_image(p))) for p in image_files(folder)]  # each (3, H, W)
        self.weights = torch.tensor([float(im.shape[1] * im.shape[2]) for im in self.images])

    def _fit(self, im: torch.Tensor) -> torch.Tensor:
        short = min(im.shape[1:])
        if short >= self.crop_size:
            return im
        scale = self.crop_size / short
        size = (max(self.crop_size, round(im.shape[1] * scale)), max(self.crop_size, round(im.shape[2] * scale)))
        return torch.nn.functional.interpolate(im[None], size=size, mode="bilinear", align_corners=False)[0]

    def crops(self, step: int, rank: int, batch_size: int) -> torch.Tensor:
        """(batch_size, 3, crop, crop) float in [0, 1]."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step * 1009 + rank)
        picks = torch.multinomial(self.weights, batch_size, replacement=True, generator=g).tolist()
        out = []
        for i in picks:
            im = self.images[i]
            y = int(torch.randint(0, im.shape[1] - self.crop_size + 1, (1,), generator=g))
            x = int(torch.randint(0, im.shape[2] - self.crop_size + 1, (1,), generator=g))
            crop = im[:, y : y + self.crop_size, x : x + self.crop_size]
            out.append(crop.flip(2) if torch.rand((), generator=g) < 0.5 else crop)
        return torch.stack(out)
