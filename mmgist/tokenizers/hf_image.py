"""hf-image: the VQ-VAEs of the multimodal LMs that transformers implements (Chameleon, Emu3, Janus).

    vq = load_tokenizer("hf-image", path="/models/chameleon-7b")   # reads only its VQ-VAE's tensors
    codes = vq.encode(photo)            # PIL image or (3, H, W) tensor -> (h, w) LongTensor
    image = vq.decode(codes)            # -> (3, h * f, w * f) float in [0, 1] (Emu3, Janus)

The image protocol of image-vq, so the shared vocabulary, prompts, the LM and distill_gist take these
codes unchanged. The folder may hold the whole multimodal model (model_type chameleon, emu3, janus:
only the tensors named *vqmodel.* are read, so a 7B checkpoint costs the VQ-VAE's memory) or the
VQ-VAE alone (chameleon_vqgan, emu3_vqgan, janus_vqgan, as `save_pretrained` of the VQ model writes).

Shapes (f the model's downsampling factor, 16 for Chameleon and Janus, 8 for Emu3): images
(B, 3, H, W) -> normalized to the model's range -> codes (B, H/f, W/f) -> images (B, 3, H, W).

Preprocessing, as each model's own image processor does it:
- size: `image_size=None` takes the model's own (Chameleon: shorter side to 512, centre crop; Janus:
  384, centre crop where Janus pads to a square; Emu3: aspect kept, area scaled into 512² to 1024²
  pixels, then fitted to the grid); `image_size=0` keeps each image's size and fits it to the patch
  grid with `fit` (as image-vq does, also per call: `encode(image, fit="crop")`); any other value
  resizes the shorter side and crops.
- values: [-1, 1]. All three are VQGAN-style models trained on that range (Chameleon's processor maps to
  [-1, 0.99]; Emu3's vision tokenizer uses mean = std = 0.5). The folder's preprocessor_config.json is
  not read: Janus's normalizes for its SigLIP understanding encoder, not for the VQ-VAE.
- Janus codes are looked up by cosine similarity, as the original Janus and the decoder expect;
  transformers' `JanusVQVAE.encode` uses the raw Euclidean nearest code (which can be another token
  than the one the decoder expects), so mmgist does not call it.

Chameleon's VQ-VAE in transformers has an encoder only (the released model does not generate
images), so its `decode` raises NotImplementedError naming why; its codes still work everywhere a
prompt is read, and the vocabulary decodes its ids to Image segments that hold the codes alone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from ..io import tensor_to_image
from ..prompt import Image
from ..validate import integer
from .base import ImageTokenizer
from .hf_folder import PretrainedFolderTokenizer, load_submodule
from .inputs import FITS, fit_images, fitted_size, images_batch, is_batch, resize_and_crop
from .registry import register_alias, register_tokenizer


@dataclasses.dataclass
class HFImageConfig:
    """`HFImageConfig(path="/models/Janus-Pro-1B", image_size=0)`."""

    path: str = ""  # a transformers model folder, or a repo id already in the local Hugging Face cache
    image_size: int | None = None  # None: the model's own; 0: keep sizes (fitted by `fit`); n: shorter side n, crop
    fit: str = "pad"  # with image_size=0: how sizes that are not a multiple of f are made one (inputs.FITS)
    model_type: str = ""  # filled on load
    dtype: str = "float32"  # float32, bfloat16 or float16
    device: str = "cpu"
    weights_sha256: str = ""  # filled on load; a saved tokenizer refuses a folder whose weights changed

    def __post_init__(self) -> None:
        if self.image_size is not None:
            integer(self.image_size, "HFImageConfig.image_size", minimum=0)
        if self.fit not in FITS:
            raise ValueError(f"unknown fit {self.fit!r}; choose one of {list(FITS)}")


class _VQ:
    """One model family: how to build its VQ-VAE, its sizes, and encode/decode on normalized images."""

    vq_class = ""
    native_size: int | None = None  # the model's own: shorter side resized to this, centre crop
    native_pixels: tuple[int, int] | None = None  # or: the area brought into this range, aspect kept
    decodes = True  # False: no decoder in transformers; prompts then hold the codes without pixels

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        c = model.config
        self.factor = 2 ** (len(c.channel_multiplier) - 1)
        self.codebook_size = int(getattr(c, "num_embeddings", None) or c.codebook_size)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalized -> codes (B, H/f, W/f)."""
        B, _, H, W = x.shape
        return self.model.encode(x, return_dict=True).image_tokens.reshape(B, H // self.factor, W // self.factor)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, h, w) -> (B, 3, h * f, w * f) normalized."""
        raise NotImplementedError


class _Chameleon(_VQ):
    vq_class = "ChameleonVQVAE"
    native_size = 512
    decodes = False

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(
            "hf-image: transformers' Chameleon VQ-VAE has no decoder (the released Chameleon does not generate "
            "images), so its codes cannot be turned back into pixels; Emu3 and Janus decode"
        )


class _Janus(_VQ):
    vq_class = "JanusVQVAE"
    native_size = 384

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        # Janus's VQ (LlamaGen's) looks codes up by cosine similarity, and its decode l2-normalizes them;
        # transformers' JanusVQVAE.encode takes the raw Euclidean nearest instead. Encode as the original.
        vq = self.model
        z = torch.nn.functional.normalize(vq.quant_conv(vq.encoder(x)).permute(0, 2, 3, 1), dim=-1)  # (B, h, w, d)
        codebook = torch.nn.functional.normalize(vq.quantize.embedding.weight, dim=-1)  # (K, d)
        return (z @ codebook.T).argmax(-1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        # JanusVQVAE.decode insists on its training grid (24 x 24); the layers below take any grid.
        vq = self.model
        z = torch.nn.functional.normalize(vq.quantize.embedding(codes), dim=-1)  # (B, h, w, d), as get_codebook_entry
        return vq.decoder(vq.post_quant_conv(z.permute(0, 3, 1, 2).contiguous()))


class _Emu3(_VQ):
    vq_class = "Emu3VQVAE"
    native_pixels = (512 * 512, 1024 * 1024)  # Emu3's image processor (min_pixels, max_pixels)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        sizes = torch.tensor([[H, W]] * B)
        return torch.stack(self.model.encode(x, image_sizes=sizes, return_dict=True).image_tokens)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode(codes)


FAMILIES: dict[str, type[_VQ]] = {"chameleon": _Chameleon, "janus": _Janus, "emu3": _Emu3}


@register_tokenizer("hf-image")
class HFImageTokenizer(PretrainedFolderTokenizer, ImageTokenizer):
    """The VQ-VAE of a transformers multimodal model from a local folder (see the module docstring)."""

    config_class = HFImageConfig
    model_types = tuple(t for family in FAMILIES for t in (family, f"{family}_vqgan"))

    def _build(self, folder: Path, model_type: str, config: dict[str, Any]) -> torch.nn.Module:
        import transformers

        family = FAMILIES[model_type.removesuffix("_vqgan")]
        cls = getattr(transformers, family.vq_class)
        if model_type.endswith("_vqgan"):
            model = cls.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
        else:  # the whole multimodal model: build its VQ-VAE from vq_config and read only its tensors
            vq_config = cls.config_class(**config.get("vq_config", {}))
            model = load_submodule(folder, cls(vq_config).float(), "vqmodel.")
        self.family = family(model)
        return model

    # --- sizes ----------------------------------------------------------------------------------
    @property
    def codebook_size(self) -> int:
        return self.family.codebook_size

    @property
    def factor(self) -> int:
        """Pixels per code along each side."""
        return self.family.factor

    @property
    def image_size(self) -> int:
        """Shorter side images are resized to (then centre-cropped square); 0 keeps sizes."""
        size = self.config.image_size
        return (self.family.native_size or 0) if size is None else size

    def tokens_per_image(self, height: int, width: int, fit: str | None = None) -> int:
        """Codes for an image of this size."""
        if self.image_size:
            return (self.image_size // self.factor) ** 2
        height, width = self._area_size(height, width)
        h, w = fitted_size(height, width, self.factor, fit or self.config.fit)
        return (h // self.factor) * (w // self.factor)

    def _area_size(self, height: int, width: int) -> tuple[int, int]:
        """The size the model's own processor scales an image to (Emu3: area into native_pixels); else as is."""
        bounds = self.family.native_pixels if self.config.image_size is None else None
        if not bounds or bounds[0] <= height * width <= bounds[1]:
            return height, width
        scale = (min(max(height * width, bounds[0]), bounds[1]) / (height * width)) ** 0.5
        return max(self.factor, round(height * scale)), max(self.factor, round(width * scale))

    # --- the protocol -------------------------------------------------------------------------
    def preprocess(self, images: Any, fit: str | None = None) -> torch.Tensor:
        """PIL image(s) or (3, H, W) / (B, 3, H, W) -> float (B, 3, H', W') in [0, 1], sized for the model."""
        x = images_batch(images)
        if self.image_size:
            size = self.image_size
            if size % self.factor:
                raise ValueError(
                    f"{self.name}: image_size {size} is not a multiple of the model's factor {self.factor}"
                )
            return resize_and_crop(x, size)
        hw = self._area_size(*x.shape[-2:])
        if hw != tuple(x.shape[-2:]):
            x = torch.nn.functional.interpolate(x, size=hw, mode="bicubic", antialias=True, align_corners=False)
            x = x.clamp(0, 1)
        return fit_images(x, self.factor, fit or self.config.fit)

    @torch.no_grad()
    def encode(self, images: Any, fit: str | None = None) -> torch.Tensor:
        """Codes (h, w) for one image, (B, h, w) for a list or a batch tensor."""
        x = self.preprocess(images, fit)
        normalized = (x * 2 - 1).to(self.device, self.dtype)
        codes = self.family.encode(normalized).long().cpu()
        return codes if is_batch(images, 3) else codes[0]

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (h, w) -> (3, h * f, w * f); (B, h, w) -> (B, 3, h * f, w * f); float in [0, 1]."""
        codes = self.check_codes(codes, batched=None)
        batch = codes[None] if codes.ndim == 2 else codes
        out = self.family.decode(batch.to(self.device)).float().cpu()
        images = ((out + 1) / 2).clamp(0, 1)
        return images[0] if codes.ndim == 2 else images

    def decode_segment(self, codes: torch.Tensor) -> Image:
        """An Image holding `codes` and their pixels; codes alone where the model cannot decode (Chameleon)."""
        if not self.family.decodes:
            return Image(codes=self.check_codes(codes))
        return super().decode_segment(codes)

    def decode_to_pil(self, codes: torch.Tensor) -> Any:
        """Like `decode`, as PIL images (one, or a list for a batch)."""
        images = self.decode(codes)
        return tensor_to_image(images) if images.ndim == 3 else [tensor_to_image(im) for im in images]


for _alias, _repo in {
    "chameleon-7b": "facebook/chameleon-7b",
    "emu3-chat": "BAAI/Emu3-Chat-hf",
    "janus-pro-1b": "deepseek-community/Janus-Pro-1B",
}.items():
    register_alias(_alias, "hf-image", path=_repo)
