"""Atomic writes, versioned headers, and image loading errors."""

import json

import pytest
import torch
from PIL import Image as PILImage

from mmgist import io, storage


def test_atomic_write_replaces_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "a" / "x.json"
    storage.write_json_atomic(path, {"b": 1, "a": 2})
    storage.write_json_atomic(path, {"c": 3})
    assert json.loads(path.read_text()) == {"c": 3}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_versioned_json_refuses_foreign_corrupt_and_newer_files(tmp_path):
    path = tmp_path / "h.json"
    storage.write_json_atomic(path, storage.versioned("thing", 1, x=1))
    assert storage.read_versioned_json(path, "thing", (1,))["x"] == 1
    with pytest.raises(ValueError, match="has format 'thing', expected 'other'"):
        storage.read_versioned_json(path, "other", (1,))
    storage.write_json_atomic(path, storage.versioned("thing", 2))
    with pytest.raises(ValueError, match="format_version 2"):
        storage.read_versioned_json(path, "thing", (1,))
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        storage.read_versioned_json(path, "thing", (1,))
    with pytest.raises(FileNotFoundError):
        storage.read_versioned_json(tmp_path / "missing.json", "thing", (1,))


def test_tensors_round_trip_and_corruption_is_caught(tmp_path):
    path = tmp_path / "w.safetensors"
    sha = storage.save_tensors_atomic({"w": torch.arange(6.0).reshape(2, 3)}, path)
    assert torch.equal(storage.load_tensors(path, sha)["w"], torch.arange(6.0).reshape(2, 3))
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        storage.load_tensors(path)
    with pytest.raises(ValueError, match="does not match the SHA-256"):
        storage.load_tensors(path, sha)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "LA", "CMYK"])
def test_load_image_converts_modes_to_rgb(tmp_path, mode):
    path = tmp_path / f"im.{'tiff' if mode == 'CMYK' else 'png'}"
    PILImage.new(mode, (5, 3)).save(path)
    im = io.load_image(path)
    assert im.mode == "RGB" and im.size == (5, 3)
    assert io.image_to_tensor(im).shape == (3, 3, 5)


def test_load_image_16_bit_keeps_brightness(tmp_path):
    path = tmp_path / "deep.png"
    PILImage.new("I;16", (2, 2), color=65535).save(path)
    assert io.image_to_tensor(io.load_image(path)).min() == 1.0


def test_load_image_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        io.load_image(tmp_path / "missing.png")
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(ValueError, match="not an image file"):
        io.load_image(tmp_path / "text.png")
    good = tmp_path / "good.png"
    PILImage.effect_noise((64, 64), 50).convert("RGB").save(good)
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        io.load_image(tmp_path / "cut.png")
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ValueError, match="over Pillow's pixel limit"):
        io.load_image(good)


def test_save_image_round_trip(tmp_path):
    x = torch.rand(3, 6, 7)
    io.save_image(x, tmp_path / "x.png")
    back = io.image_to_tensor(io.load_image(tmp_path / "x.png"))
    assert (back - x).abs().max() <= 0.5 / 255 + 1e-6


def test_16_bit_images_keep_their_level_in_either_byte_order(tmp_path):
    import numpy as np

    half = np.full((2, 2), 32768, dtype=np.uint16)
    for mode, data in (("I;16", half), ("I;16B", half.astype(">u2"))):
        im = PILImage.frombytes(mode, (2, 2), data.tobytes())
        assert io.image_to_tensor(im).mean().item() == pytest.approx(128 / 255, abs=1 / 255)
    (tmp_path / "half.pgm").write_bytes(b"P5 2 2 65535\n" + half.astype(">u2").tobytes())  # opens as mode I
    assert io.image_to_tensor(io.load_image(tmp_path / "half.pgm")).mean().item() == pytest.approx(0.5, abs=0.01)


def test_save_image_follows_the_suffix_and_refuses_unknown_ones(tmp_path):
    io.save_image(torch.rand(3, 4, 4), tmp_path / "x.bmp")
    assert PILImage.open(tmp_path / "x.bmp").format == "BMP"
    with pytest.raises(ValueError, match=r"suffix '.txt'"):
        io.save_image(torch.rand(3, 4, 4), tmp_path / "x.txt")


def test_saved_files_are_readable_by_others(tmp_path):
    storage.write_json_atomic(tmp_path / "x.json", {})
    mode = (tmp_path / "x.json").stat().st_mode & 0o777
    assert mode & 0o044 == 0o044  # group and others can read (umask 022 in CI gives 0644)


def test_atomic_folder_without_an_atomic_exchange_and_its_repair(tmp_path, monkeypatch):
    from mmgist import storage

    monkeypatch.setattr(storage, "_exchange", lambda a, b: False)  # a system without renameat2: two renames
    for version in ("1", "2"):
        with storage.atomic_folder(tmp_path / "f", owns=lambda name: name == "v") as tmp:
            (tmp / "v").write_text(version)
        (tmp_path / "f" / "card").write_text("kept")
    assert (tmp_path / "f" / "v").read_text() == "2" and (tmp_path / "f" / "card").read_text() == "kept"
    # a save killed between its two renames: the complete old folder sits aside, the target is gone
    (tmp_path / "f").rename(tmp_path / ".f.old-abc123")
    (tmp_path / ".f.tmp-def456").mkdir()  # and a half-written new one
    with pytest.raises(RuntimeError), storage.atomic_folder(tmp_path / "f"):
        raise RuntimeError("this save fails before its swap")
    assert (tmp_path / "f" / "v").read_text() == "2"  # the old version was put back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]  # and every leftover removed
