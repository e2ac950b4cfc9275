"""Training and held-out data that install offline: Debian's photo packages and the sample photographs
bundled with scikit-image and scikit-learn.

    gather_photos(out)         every installed photo collection -> out/train, out/heldout (+ manifest.json)
    photo_paths()              every bundled sample photograph, by name
    split_photos(out)          the bundled samples only (the v1 image tokenizer's data)
    RandomCrops(folder, 64)    step-indexed random crops: crops(step, rank, batch) is a pure function;
                               optional random rescaling and colour augmentation (CropAugment)

Held out, never trained on (the benchmarks and cards measure on these):
- bundled samples: HELDOUT (both motorcycle photos together: a stereo pair of one scene);
- package images: a group (one picture and its variants: sizes, light/dark) is held out when the
  SHA-256 of its first file's bytes, read as a number, is divisible by HELDOUT_EVERY. The split is a
  property of the files, so it is the same on every machine and for every run.
`plasma-workspace-wallpapers` and `fillets-ng-data-nl` are reserved for independent evaluation:
`gather_photos` refuses them and never reads their files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from ..io import image_to_tensor, load_image, save_image
from ..storage import PathLike, write_json_atomic

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
# Photographs (and photo-like scans) bundled with scikit-image; charts, masks and test patterns are left out.
SKIMAGE_PHOTOS = ("astronaut", "brick", "camera", "cell", "chelsea", "clock_motion", "coffee", "coins", "grass",
                  "gravel", "hubble_deep_field", "ihc", "microaneurysms", "moon", "motorcycle_left",
                  "motorcycle_right", "page", "retina", "rocket", "text")  # fmt: skip
SKLEARN_PHOTOS = ("china", "flower")
HELDOUT = ("astronaut", "chelsea", "coffee", "motorcycle_left", "motorcycle_right")
# Debian packages of photographs and illustrations (`make data` installs them); lomiri-wallpapers
# pulls in lomiri-wallpapers-16.04, which is read too.
PHOTO_PACKAGES = ("ukui-wallpapers", "lomiri-wallpapers", "lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04",
                  "gnome-backgrounds", "mate-backgrounds", "sway-backgrounds")  # fmt: skip
RESERVED_PACKAGES = ("plasma-workspace-wallpapers", "fillets-ng-data-nl")  # independent evaluation only
HELDOUT_EVERY = 5  # about one package picture in five is held out (by file hash, see the module docstring)
# The held-out images that are camera photographs (sorted by looking at each); the other held-out
# images are illustrations, renders and textures. The benchmarks report the two kinds apart.
HELDOUT_PHOTOGRAPHS = ("Aqua", "Storm", "aitzgorri_by_Aitzol_Berasategi", "astronaut", "chelsea", "coffee",
                       "life_by_Aitzol_Berasategi", "motorcycle_left", "motorcycle_right")  # fmt: skip
MAX_SIDE = 1024  # gathered images are downscaled so their long side is at most this (wallpapers are up to 6000 px)
MIN_SIDE = 384  # smaller package images (icons, thumbnails) are skipped


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


@dataclasses.dataclass
class PhotoCollection:
    """What `gather_photos` wrote: two folders of PNGs and one manifest row per image."""

    train: Path
    heldout: Path
    manifest: list[dict]  # {"name", "source", "package", "sha256", "group", "group_sha256", "split", "size"}


def _package_files(package: str) -> list[Path]:
    """Image files installed by a Debian package ([] when it is not installed or dpkg is missing)."""
    if package in RESERVED_PACKAGES:
        raise ValueError(f"{package!r} is reserved for independent evaluation and must never be trained on")
    try:
        listing = subprocess.run(["dpkg-query", "-L", package], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return []
    if listing.returncode != 0:
        return []
    files = (Path(line) for line in listing.stdout.splitlines())
    return sorted(p for p in files if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _group_key(path: Path) -> str:
    """One key for a picture's variants: 'Elephants_3840x2160' and 'Elephants', 'wood-d' and 'wood-l'."""
    stem = re.sub(r"_\d+x\d+", "", path.stem)
    stem = re.sub(r"(_Portrait|-[dl]|-Dark|-Light)$", "", stem)
    return f"{path.parent.name}/{stem}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _downscaled(path: Path, max_side: int):
    im = load_image(path)
    scale = max_side / max(im.size)
    if scale < 1:
        im = im.resize((round(im.width * scale), round(im.height * scale)), resample=3, reducing_gap=3.0)  # bicubic
    return im


def gather_photos(
    out: PathLike, packages: tuple[str, ...] = PHOTO_PACKAGES, bundled: bool = True, max_side: int = MAX_SIDE
) -> PhotoCollection:
    """Collect every installed photo collection into out/train and out/heldout (PNG, long side <= max_side).

    Reads the Debian `packages` that are installed (`make data` installs them; missing ones are
    skipped) and, with `bundled`, the scikit-image / scikit-learn sample photos. Of a picture shipped
    in several sizes only the largest is kept; light/dark variants stay together in one split.
    Writes out/manifest.json with the source, SHA-256 and split of every image. Rerunning reuses
    the files already written. Raises if nothing at all is found.
    """
    out = Path(out)
    hashes: dict[Path, str] = {}  # each source file is read and hashed once

    def sha(path: Path) -> str:
        if path not in hashes:
            hashes[path] = _sha256(path)
        return hashes[path]

    groups: dict[str, list[tuple[str, Path]]] = {}
    for package in packages:
        for path in _package_files(package):
            groups.setdefault(_group_key(path), []).append((package, path))
    rows = []
    for key, members in sorted(groups.items()):
        first_sha = sha(min(members, key=lambda m: m[1].name)[1])
        split = "heldout" if int(first_sha, 16) % HELDOUT_EVERY == 0 else "train"
        by_variant: dict[str, tuple[str, Path]] = {}
        for package, path in members:  # sizes of one variant: keep the largest file
            variant = re.sub(r"(_\d+x\d+|_Portrait)", "", path.stem)
            if variant not in by_variant or path.stat().st_size > by_variant[variant][1].stat().st_size:
                by_variant[variant] = (package, path)
        for package, path in sorted(by_variant.values()):
            rows.append(
                {"name": path.stem, "source": str(path), "package": package, "group": key,
                 "group_sha256": first_sha, "split": split}
            )  # fmt: skip
    if bundled:
        for name, path in photo_paths().items():
            split = "heldout" if name in HELDOUT else "train"
            rows.append({"name": name, "source": str(path), "package": "bundled", "group": name, "split": split})
    if not rows:
        raise FileNotFoundError(
            f"no photographs found: none of the packages {list(packages)} is installed (run `make data`) "
            "and the bundled samples were not asked for"
        )
    kept = []
    for row in rows:
        source = Path(row["source"])
        target = out / row["split"] / f"{row['name']}.png"
        if not target.exists():
            im = _downscaled(source, max_side)
            if row["package"] != "bundled" and min(im.size) < MIN_SIDE * min(1.0, max_side / MAX_SIDE):
                continue
            save_image(im, target)
        size = load_image(target).size
        kept.append({**row, "sha256": sha(source), "size": list(size)})
    write_json_atomic(out / "manifest.json", {"images": kept, "heldout_every": HELDOUT_EVERY, "max_side": max_side})
    return PhotoCollection(out / "train", out / "heldout", kept)


def image_files(folder: PathLike) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {str(folder)!r} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"image folder {str(folder)!r} has no images (looked for {', '.join(IMAGE_SUFFIXES)})")
    return files


@dataclasses.dataclass
class CropAugment:
    """Random rescaling and colour changes for training crops (all off by default).

    A crop covers crop_size / scale pixels of the image, scale log-uniform in [min_scale, max_scale],
    resized to crop_size (antialiased). Then, each with its probability: a hue rotation by a uniform
    amount of the colour wheel, a saturation factor and a brightness factor (log-uniform up to the
    given factor either way), and conversion to grey (so grey stays grey).

    `colour()` rotates hues over the whole wheel; `natural()` only nudges them (up to 1/20 turn), so the
    decoder keeps the hue statistics of real photographs (see the image-vq-f8 card: whole-wheel
    rotation alone shifted reds to orange on held-out photos).
    """

    min_scale: float = 1.0
    max_scale: float = 1.0
    hue: float = 0.0  # probability of a hue rotation
    hue_range: float = 0.5  # the rotation is uniform in [-hue_range, hue_range] turns (0.5: the whole wheel)
    saturation: float = 1.0  # factor range: exp(uniform(-log s, log s)); 1 = off
    brightness: float = 1.0  # same, for brightness
    grey: float = 0.0  # probability of turning the crop grey

    def __post_init__(self) -> None:
        if not 0 < self.min_scale <= self.max_scale:
            raise ValueError(f"CropAugment needs 0 < min_scale <= max_scale, got {self.min_scale}, {self.max_scale}")
        for name in ("hue", "grey"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"CropAugment.{name} is a probability in [0, 1], got {getattr(self, name)}")
        if not 0 <= self.hue_range <= 0.5:
            raise ValueError(f"CropAugment.hue_range is a fraction of a turn in [0, 0.5], got {self.hue_range}")
        for name in ("saturation", "brightness"):
            if not getattr(self, name) >= 1:
                raise ValueError(f"CropAugment.{name} is a factor range >= 1 (1 = off), got {getattr(self, name)}")

    @classmethod
    def colour(cls) -> CropAugment:
        """What the v2 image tokenizers train with: scales 1/4 to 1, every hue, grey 10% of the time."""
        return cls(min_scale=0.25, max_scale=1.0, hue=0.8, saturation=1.6, brightness=1.3, grey=0.1)

    @classmethod
    def natural(cls) -> CropAugment:
        """Scales 1/4 to 1, small hue nudges (half the crops, up to 1/20 turn), milder saturation, grey 10%."""
        return cls(min_scale=0.25, max_scale=1.0, hue=0.5, hue_range=0.05, saturation=1.3, brightness=1.3, grey=0.1)


class RandomCrops:
    """Random square crops (with horizontal flips) from every image in a folder (or a list of files), held in
    memory (uint8).

    `crops(step, rank, batch_size)` depends only on its arguments and the seed, so a resumed or
    distributed run sees exactly the batches an uninterrupted single run would have drawn for it.
    Images smaller than the crop are upscaled to fit. Larger images are drawn more often (by area).
    """

    def __init__(
        self, folder: PathLike | Sequence[PathLike], crop_size: int, seed: int = 0, augment: CropAugment | None = None
    ) -> None:
        self.crop_size, self.seed = crop_size, seed
        self.augment = augment or CropAugment()
        files = image_files(folder) if isinstance(folder, (str, Path)) else [Path(p) for p in folder]
        if not files:
            raise ValueError(f"no images to crop from in {folder}")
        self.images = [self._fit(_to_uint8(image_to_tensor(load_image(p)))) for p in files]  # (3, H, W)
        self.weights = torch.tensor([float(im.shape[1] * im.shape[2]) for im in self.images])

    def _fit(self, im: torch.Tensor) -> torch.Tensor:
        short = min(im.shape[1:])
        need = math.ceil(self.crop_size / self.augment.min_scale)
        if short >= need:
            return im
        size = (max(need, round(im.shape[1] * need / short)), max(need, round(im.shape[2] * need / short)))
        return _to_uint8(F.interpolate(im[None].float() / 255, size=size, mode="bilinear", align_corners=False)[0])

    def crops(self, step: int, rank: int, batch_size: int) -> torch.Tensor:
        """(batch_size, 3, crop, crop) float in [0, 1]."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step * 1009 + rank)
        picks = torch.multinomial(self.weights, batch_size, replacement=True, generator=g).tolist()
        return torch.stack([self._crop(self.images[i], g) for i in picks])

    def _uniform(self, lo: float, hi: float, g: torch.Generator) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=g))

    def _crop(self, im: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        aug, c = self.augment, self.crop_size
        side = c  # without augmentation the random stream is the one of earlier versions: same crops
        if aug.min_scale != aug.max_scale or aug.min_scale != 1:
            scale = math.exp(self._uniform(math.log(aug.min_scale), math.log(aug.max_scale), g))
            side = min(round(c / scale), *im.shape[1:])
        y = int(torch.randint(0, im.shape[1] - side + 1, (1,), generator=g))
        x = int(torch.randint(0, im.shape[2] - side + 1, (1,), generator=g))
        crop = im[:, y : y + side, x : x + side].float() / 255  # (3, side, side); uint8 / 255 is exact as before
        if side != c:
            crop = F.interpolate(crop[None], size=(c, c), mode="bilinear", antialias=True, align_corners=False)[0]
        if torch.rand((), generator=g) < 0.5:
            crop = crop.flip(2)
        if aug.hue or aug.saturation > 1 or aug.brightness > 1 or aug.grey:
            crop = _colour_augment(crop.clamp(0, 1), aug, g, self._uniform)
        return crop


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x * 255).round().clamp(0, 255).to(torch.uint8)


def _colour_augment(crop: torch.Tensor, aug: CropAugment, g: torch.Generator, uniform) -> torch.Tensor:
    """(3, H, W) in [0, 1] -> the same with aug's random hue / saturation / brightness / grey applied."""
    from torchvision.transforms.v2 import functional as TF

    draws = torch.rand(2, generator=g)  # always drawn, so the stream does not depend on which branches run
    hue, sat, bright = uniform(-0.5, 0.5, g), uniform(-1, 1, g), uniform(-1, 1, g)
    if draws[0] < aug.hue:
        crop = TF.adjust_hue(crop, hue * aug.hue_range / 0.5)
    if aug.saturation > 1:
        crop = TF.adjust_saturation(crop, math.exp(sat * math.log(aug.saturation)))
    if aug.brightness > 1:
        crop = TF.adjust_brightness(crop, math.exp(bright * math.log(aug.brightness)))
    if draws[1] < aug.grey:
        crop = TF.rgb_to_grayscale(crop, num_output_channels=3)
    return crop.clamp(0, 1)
