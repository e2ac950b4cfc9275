"""Reading and writing media files, with errors that say which file and what is wrong.

Images go through Pillow. Pillow's decompression-bomb guard stays on: an image over
`Image.MAX_IMAGE_PIXELS` (about 89 megapixels) is refused rather than decoded.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from .storage import PathLike, write_bytes_atomic


def load_image(path: PathLike, mode: str = "RGB"):
    """Open an image file fully decoded and converted to `mode` (grayscale, palette, RGBA, 16-bit all become RGB).

    Raises FileNotFoundError for a missing file and ValueError for anything Pillow cannot decode
    (not an image, truncated, zero-size, over the pixel limit), naming the file.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {str(path)!r} does not exist")
    try:
        with Image.open(path) as im:
            im.load()  # decode now, so a truncated file fails here and not later
            if im.width == 0 or im.height == 0:
                raise ValueError(f"image file {str(path)!r} has zero size {im.width}x{im.height}")
            return to_rgb(im) if mode == "RGB" else im.convert(mode)
    except UnidentifiedImageError as e:
        raise ValueError(f"{str(path)!r} is not an image file Pillow can read") from e
    except Image.DecompressionBombError as e:
        raise ValueError(
            f"image file {str(path)!r} is over Pillow's pixel limit ({Image.MAX_IMAGE_PIXELS} pixels): {e}"
        ) from e
    except OSError as e:  # truncated or corrupt data
        raise ValueError(f"image file {str(path)!r} is corrupt or truncated: {e}") from e


def to_rgb(im):
    """A PIL image as 8-bit RGB: 16-bit grayscale is scaled down, transparency composited on white."""
    from PIL import Image

    if im.mode.startswith("I"):  # 16- or 32-bit integer grayscale: scale the 16-bit range to 8 bits
        import numpy as np

        arr = np.asarray(im).astype(np.float64)  # numpy honours the byte order of I;16B
        peak = 65535.0 if arr.max(initial=0) <= 65535 else float(arr.max())
        im = Image.fromarray((arr * 255 / peak).round().clip(0, 255).astype(np.uint8), mode="L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def image_to_tensor(im) -> torch.Tensor:
    """PIL image -> float tensor (3, H, W) in [0, 1]."""
    import numpy as np

    arr = np.asarray(to_rgb(im), dtype=np.uint8)  # (H, W, 3)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0


def tensor_to_image(x: torch.Tensor):
    """Float tensor (3, H, W) in [0, 1] -> PIL RGB image (values clamped)."""
    from PIL import Image

    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"expected an image tensor (3, H, W), got {tuple(x.shape)}")
    arr = (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, mode="RGB")


def save_image(im, path: PathLike) -> None:
    """Save a PIL image or (3, H, W) tensor atomically; the format follows the file suffix."""
    if isinstance(im, torch.Tensor):
        im = tensor_to_image(im)
    from PIL import Image

    suffix = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None:
        raise ValueError(f"cannot tell an image format from the suffix {suffix!r} of {str(path)!r}; use .png or .jpg")
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    write_bytes_atomic(path, buf.getvalue())
