"""Reading and writing images through Pillow, with errors that say which file and what is wrong.

An image over `Image.MAX_IMAGE_PIXELS` (about 89 megapixels) is refused before it is decoded (Pillow itself
only warns up to twice that). 32-bit float images (mode F, a float TIFF) are read as values in [0, 1], or
[0, 255], or [0, 65535], whichever range holds them. Truncated files are refused, not loaded short.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch

from ..storage import PathLike, write_bytes_atomic
from ..validate import existing_file, show


def load_image(path: PathLike, mode: str = "RGB"):
    """Open an image file fully decoded and converted to `mode` (grayscale, palette, RGBA, 16-bit all become RGB).

    Raises FileNotFoundError for a missing file, IsADirectoryError for a folder and ValueError for
    anything Pillow cannot decode (not an image, truncated, zero-size, over the pixel limit), naming the file.
    """
    from PIL import Image, UnidentifiedImageError

    path = existing_file(path, "image file")
    try:
        with warnings.catch_warnings():  # the size is checked below, before decoding: no half-way warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            if Image.MAX_IMAGE_PIXELS and im.width * im.height > Image.MAX_IMAGE_PIXELS:
                raise ValueError(
                    f"image file {str(path)!r} is {im.width}x{im.height} = {im.width * im.height} pixels, over "
                    f"the limit of {Image.MAX_IMAGE_PIXELS} (PIL.Image.MAX_IMAGE_PIXELS); refused before decoding"
                )
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
    except ValueError as e:  # a float image with NaN pixels, say: name the file
        if str(path) in str(e):
            raise
        raise ValueError(f"image file {str(path)!r}: {e}") from e


def to_rgb(im):
    """A PIL image as 8-bit RGB: 16-bit grayscale is scaled down, float grayscale scaled from the range
    that holds it, transparency composited on white."""
    from PIL import Image

    if im.mode == "F":  # 32-bit float: [0, 1], [0, 255] or [0, 65535], whichever holds the values
        import numpy as np

        arr = np.asarray(im).astype(np.float64)
        if not np.isfinite(arr).all() or (arr.size and arr.min() < 0):
            raise ValueError("a float image must hold finite values >= 0 (NaN, inf or negative pixels found)")
        top = float(arr.max(initial=0))
        peak = next(p for p in (1.0, 255.0, 65535.0, max(top, 1.0)) if top <= p)
        im = Image.fromarray((arr * 255 / peak).round().clip(0, 255).astype(np.uint8), mode="L")
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
    """PIL image -> float tensor (3, H, W) in [0, 1]. Anything else (a path, an array) is refused with a hint."""
    import numpy as np

    check_pil(im)
    arr = np.asarray(to_rgb(im), dtype=np.uint8)  # (H, W, 3)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0


def check_pil(im) -> None:
    """Refuse anything but a PIL image, saying how to get one from what was given."""
    from PIL import Image

    if isinstance(im, Image.Image):
        return
    if isinstance(im, (str, Path)):
        hint = "; load the file first with mmgist.io.load_image(path)"
    elif type(im).__module__ == "numpy":
        hint = f" of shape {getattr(im, 'shape', '?')}; convert it with PIL.Image.fromarray(array) (uint8 H x W x 3)"
    elif isinstance(im, torch.Tensor):
        hint = f" of shape {tuple(im.shape)}; pass an image tensor (3, H, W) where a tensor is accepted"
    else:
        hint = ""
    raise TypeError(f"expected a PIL image, got {type(im).__name__} {show(im)}{hint}")


def tensor_to_image(x: torch.Tensor):
    """Image tensor (3, H, W), float in [0, 1] (values clamped) or uint8 0..255 -> PIL RGB image."""
    from PIL import Image

    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected an image tensor (3, H, W), got {type(x).__name__}")
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"expected an image tensor (3, H, W), got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        arr = x.detach().permute(1, 2, 0).cpu().numpy()
        return Image.fromarray(arr.copy(), mode="RGB")
    if not x.dtype.is_floating_point:
        raise TypeError(f"an image tensor must be float in [0, 1] or uint8, got {x.dtype}")
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"the image tensor holds {bad} NaN or inf value(s); refusing to write them as black pixels")
    arr = (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, mode="RGB")


def save_image(im, path: PathLike) -> None:
    """Save a PIL image or (3, H, W) tensor atomically; the format follows the file suffix."""
    if isinstance(im, torch.Tensor):
        im = tensor_to_image(im)
    check_pil(im)
    from PIL import Image

    suffix = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None:
        raise ValueError(f"cannot tell an image format from the suffix {suffix!r} of {str(path)!r}; use .png or .jpg")
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    write_bytes_atomic(path, buf.getvalue())
