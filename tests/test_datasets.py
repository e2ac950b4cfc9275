"""mmgist.data.images: the hash split of package photos, reserved packages, and augmented crops."""

import pytest
import torch

from mmgist.data import images as datasets
from mmgist.data.images import CropAugment, RandomCrops, _group_key, gather_photos
from mmgist.io import save_image


@pytest.fixture
def folder(tmp_path):
    torch.manual_seed(0)
    for k in range(3):
        save_image(torch.rand(3, 48 + 8 * k, 80), tmp_path / f"im{k}.png")
    return tmp_path


def test_variants_of_one_picture_share_a_group(tmp_path):
    assert _group_key(tmp_path / "Elephants_3840x2160.jpg") == _group_key(tmp_path / "Elephants.jpg")
    assert _group_key(tmp_path / "wood-d.webp") == _group_key(tmp_path / "wood-l.webp")
    assert _group_key(tmp_path / "Sway_1136x640_Portrait.png") == _group_key(tmp_path / "Sway_1136x640.png")
    assert _group_key(tmp_path / "Aqua.jpg") != _group_key(tmp_path / "Storm.jpg")


def test_reserved_packages_are_refused():
    for package in datasets.RESERVED_PACKAGES:
        with pytest.raises(ValueError, match="reserved for independent evaluation"):
            gather_photos("unused", packages=(package,), bundled=False)


def _fake_packages(tmp_path, monkeypatch):
    """Three 'packages' of images, read by gather_photos as if dpkg listed them."""
    src = tmp_path / "src"
    torch.manual_seed(1)
    files = {}
    for k in range(12):
        path = src / f"pic{k}.png"
        save_image(torch.rand(3, 400, 420 + k), path)
        files.setdefault(f"pkg{k % 3}", []).append(path)
    save_image(torch.rand(3, 420, 640), src / "pic0_1280x800.png")  # a larger size of pic0
    files["pkg0"].append(src / "pic0_1280x800.png")
    save_image(torch.rand(3, 64, 64), src / "icon.png")  # too small: skipped
    files["pkg1"].append(src / "icon.png")
    monkeypatch.setattr(datasets, "_package_files", lambda package: sorted(files.get(package, [])))
    return tuple(files)


def test_gather_splits_by_file_hash_and_keeps_the_largest_size(tmp_path, monkeypatch):
    packages = _fake_packages(tmp_path, monkeypatch)
    first = gather_photos(tmp_path / "a", packages=packages, bundled=False)
    again = gather_photos(tmp_path / "b", packages=tuple(reversed(packages)), bundled=False)
    split = {r["name"]: r["split"] for r in first.manifest}
    assert split == {r["name"]: r["split"] for r in again.manifest}  # a property of the files, not of the order
    assert "icon" not in split and "pic0" not in split and "pic0_1280x800" in split
    for row in first.manifest:
        want = "heldout" if int(row["group_sha256"], 16) % datasets.HELDOUT_EVERY == 0 else "train"
        assert row["split"] == want
        assert (first.train.parent / row["split"] / f"{row['name']}.png").is_file()
        assert max(row["size"]) <= datasets.MAX_SIDE
    assert {"train", "heldout"} <= set(split.values())
    assert not set(p.name for p in first.train.iterdir()) & set(p.name for p in first.heldout.iterdir())


def test_gather_without_anything_installed_says_what_to_do(monkeypatch):
    monkeypatch.setattr(datasets, "_package_files", lambda package: [])
    with pytest.raises(FileNotFoundError, match="make data"):
        gather_photos("unused", bundled=False)


def test_crops_are_a_pure_function_of_step_and_rank(folder):
    crops = RandomCrops(folder, 32, seed=3, augment=CropAugment.colour())
    a = crops.crops(7, 1, 4)
    assert a.shape == (4, 3, 32, 32) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, RandomCrops(folder, 32, seed=3, augment=CropAugment.colour()).crops(7, 1, 4))
    assert not torch.equal(a, crops.crops(8, 1, 4))


def test_without_augmentation_crops_are_exact_pixels(folder):
    from mmgist.io import image_to_tensor, load_image

    images = [image_to_tensor(load_image(p)) for p in sorted(folder.glob("*.png"))]
    crop = RandomCrops(folder, 16, seed=0).crops(0, 0, 1)[0]
    found = any(
        torch.equal(crop, im[:, y : y + 16, x : x + 16]) or torch.equal(crop, im[:, y : y + 16, x : x + 16].flip(2))
        for im in images
        for y in range(im.shape[1] - 15)
        for x in range(im.shape[2] - 15)
    )
    assert found


def test_colour_augmentation_changes_hue_and_keeps_grey_grey(folder):
    plain = RandomCrops(folder, 32, seed=0, augment=CropAugment(hue=1.0))
    assert not torch.equal(plain.crops(0, 0, 8), RandomCrops(folder, 32, seed=0).crops(0, 0, 8))
    grey = RandomCrops(folder, 32, seed=0, augment=CropAugment(grey=1.0)).crops(0, 0, 4)
    assert torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(grey[:, 1], grey[:, 2])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"min_scale": 0}, "min_scale"),
        ({"min_scale": 0.5, "max_scale": 0.25}, "min_scale"),
        ({"hue": 1.5}, "probability"),
        ({"saturation": 0.5}, "factor range"),
    ],
)
def test_bad_augment_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CropAugment(**kwargs)
