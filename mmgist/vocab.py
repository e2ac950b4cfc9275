"""SharedVocabulary: one id space for text and every media modality, and the codes <-> ids mapping.

How a prompt becomes ids (the id ranges themselves are in `mmgist.layout`):

    text    its text-tokenizer ids, as they are (no markers: text is the default)
    image   <|image|>  row 0 codes <|row|>  row 1 codes <|row|> ... <|/image|>
    audio   <|audio|>  frame 0: codebook 0, 1, .. C-1 codes  frame 1: ... <|/audio|>
    video   <|video|>  frame 0 as an image grid (rows + <|row|>) <|frame|>  frame 1 ... <|/video|>

Worked example, bytes + a 16-code image tokenizer (text 0-255, image 256-271, <|image|> 272,
<|/image|> 273, <|row|> 274, <|pad|> 275, <|bos|> 276, <|eos|> 277):

    Prompt(["Hi", Image(codes=torch.tensor([[1, 2], [3, 4]]))])
    -> [72, 105,  272,  257, 258, 274,  259, 260, 274,  273]
        H   i     img   row 0     row   row 1     row   /img

The row tokens make a grid self-describing (h = number of rows, w = codes per row), so decode
needs no side information; <|frame|> does the same for video. `decode` refuses anything that does
not parse (an id out of range, a code outside its segment, ragged rows) naming the position.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .layout import CLOSE, OPEN, IdLayout
from .prompt import Audio, Image, Prompt, Segment, Text, Video
from .storage import PathLike, atomic_folder, read_versioned_json, sha256_json, versioned, write_json_atomic
from .tokenizers.base import ModalityTokenizer
from .tokenizers.registry import load_tokenizer
from .validate import existing_dir, integer
from .validate import ids as check_ids

if TYPE_CHECKING:
    from transformers import PreTrainedModel

FORMAT = "mmgist-vocabulary"
FORMAT_VERSION = 1
VOCAB_FILE = "mmgist_vocab.json"
TOKENIZERS_DIR = "mmgist_tokenizers"
_CODES_ONLY = {"image": lambda c: Image(codes=c), "audio": lambda c: Audio(codes=c), "video": lambda c: Video(codes=c)}


class SharedVocabulary:
    """Text plus optional image, audio and video tokenizers in one id space.

    >>> vocab = SharedVocabulary(text=ByteTokenizer(), image=load_tokenizer("image-vq-f8"))
    >>> ids = vocab.encode(Prompt(["Describe", photo, "briefly."]))
    >>> vocab.decode(ids)   # a Prompt with the image's codes and its reconstruction
    """

    def __init__(
        self,
        text: ModalityTokenizer,
        image: ModalityTokenizer | None = None,
        audio: ModalityTokenizer | None = None,
        video: ModalityTokenizer | None = None,
    ) -> None:
        given = {"text": text, "image": image, "audio": audio, "video": video}
        self.tokenizers: dict[str, ModalityTokenizer] = {}
        for modality, tok in given.items():
            if tok is None:
                continue
            if not isinstance(tok, ModalityTokenizer):
                raise TypeError(f"SharedVocabulary({modality}=...) needs a ModalityTokenizer, got {type(tok).__name__}")
            if tok.modality != modality:
                raise ValueError(f"SharedVocabulary({modality}=...) got a {tok.modality!r} tokenizer ({tok.name!r})")
            self.tokenizers[modality] = tok
        self.layout = IdLayout(
            text_size=text.codebook_size,
            image_size=image.codebook_size if image else 0,
            audio_size=audio.codebook_size if audio else 0,
            audio_codebooks=audio.num_codebooks if audio else 0,
            video_size=video.codebook_size if video else 0,
            text_specials=text.special_ids() if hasattr(text, "special_ids") else {},
        )
        self.pad_id = self.layout.special("<|pad|>")
        self.bos_id = self.layout.special("<|bos|>")
        self.eos_id = self.layout.special("<|eos|>")

    # --- the id space -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.layout)

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.layout.modalities

    @property
    def special_tokens(self) -> dict[str, int]:
        return self.layout.specials

    def segment_of(self, token_id: int) -> str:
        """ "text", "image", "audio", "video" or "special"."""
        return self.layout.segment_of(integer(token_id, "token_id"))

    def allowed_ids(self, modality: str, codebook: int | None = None) -> torch.Tensor:
        """The code ids of `modality` (one audio codebook if given), as a sorted LongTensor."""
        return self.layout.allowed_ids(modality, codebook)

    def tokenizer(self, modality: str) -> ModalityTokenizer:
        if modality not in self.tokenizers:
            raise ValueError(f"this vocabulary has no {modality} tokenizer; it has {list(self.tokenizers)}")
        return self.tokenizers[modality]

    # --- prompt -> ids ------------------------------------------------------------------------
    def encode(
        self,
        prompt: Prompt | Iterable[Any] | str,
        add_bos: bool = False,
        add_eos: bool = False,
        return_tensors: str | None = None,
    ) -> list[int] | torch.Tensor:
        """Ids of a prompt; `return_tensors="pt"` gives a LongTensor (n,) instead of a list."""
        if return_tensors not in (None, "pt"):
            raise ValueError(f"return_tensors must be None or 'pt', got {return_tensors!r}")
        prompt = prompt if isinstance(prompt, Prompt) else Prompt(prompt)
        if len(prompt) == 0:
            raise ValueError("cannot encode an empty prompt")
        ids = [self.bos_id] if add_bos else []
        for segment in prompt:
            ids.extend(self.encode_segment(segment))
        if add_eos:
            ids.append(self.eos_id)
        return torch.tensor(ids, dtype=torch.long) if return_tensors == "pt" else ids

    def encode_segment(self, segment: Segment) -> list[int]:
        """Ids of one segment, markers included; its codes are used when it has them."""
        tok = self.tokenizer(segment.modality)
        codes = tok.encode_segment(segment) if segment.codes is None else segment.codes
        codes = tok.check_codes(codes)
        return self.codes_to_ids(segment.modality, codes)

    def codes_to_ids(self, modality: str, codes: torch.Tensor) -> list[int]:
        """The ids (with markers) of one item's codes: text (n,), image (h, w), audio (C, T), video (t, h, w)."""
        L = self.layout
        if modality == "text":
            return (codes + L.offset("text")).tolist()
        if modality == "image":
            return [L.special(OPEN["image"]), *self._grid(codes + L.offset("image")), L.special(CLOSE["image"])]
        if modality == "audio":
            offsets = torch.tensor([L.offset("audio", c) for c in range(codes.shape[0])])
            frames = (codes + offsets[:, None]).T.reshape(-1)  # (C, T) -> (T, C) -> T*C, frame-major
            return [L.special(OPEN["audio"]), *frames.tolist(), L.special(CLOSE["audio"])]
        if modality == "video":
            ids = [L.special(OPEN["video"])]
            for frame in codes + L.offset("video"):
                ids += [*self._grid(frame), L.special("<|frame|>")]
            return [*ids, L.special(CLOSE["video"])]
        raise ValueError(f"unknown modality {modality!r}; expected one of text, image, audio, video")

    def _grid(self, grid: torch.Tensor) -> list[int]:
        row_end = torch.full((grid.shape[0], 1), self.layout.special("<|row|>"))
        return torch.cat([grid, row_end], dim=1).reshape(-1).tolist()  # (h, w + 1) -> h * (w + 1)

    # --- ids -> prompt ------------------------------------------------------------------------
    def decode(self, ids: Iterable[int] | torch.Tensor, media: bool = True) -> Prompt:
        """The prompt behind `ids`. With `media=False` media segments hold only their codes.

        <|bos|> and <|pad|> between segments are skipped and decoding stops at <|eos|>, unless they are
        text ids (`IdLayout.text_specials`, a pretrained LM's own tokens): those decode as the text they
        are. Anything else that does not parse raises a ValueError naming the id and its position; ids that are not ints
        (floats, strings, a float tensor) raise a TypeError and are never rounded.
        """
        ids = check_ids(ids, what="decode's ids")
        L, segments, text = self.layout, [], []
        closers = {L.special(CLOSE[m]): m for m in OPEN if m in self.tokenizers}
        openers = {L.special(OPEN[m]): m for m in OPEN if m in self.tokenizers}
        i = 0
        while i < len(ids):
            t = ids[i]
            L.check_id(t, i)
            kind = L.segment_of(t)
            if kind == "text":
                text.append(t)
                i += 1
                continue
            if text:
                segments.append(self._segment("text", torch.tensor(text) - L.offset("text"), media))
                text = []
            if t == self.eos_id:
                break
            if t in (self.bos_id, self.pad_id):
                i += 1
            elif t in openers:
                modality = openers[t]
                end = next((j for j in range(i + 1, len(ids)) if ids[j] == L.special(CLOSE[modality])), None)
                if end is None:
                    raise ValueError(f"{OPEN[modality]} at position {i} is never closed by {CLOSE[modality]}")
                codes = self._parse(modality, ids[i + 1 : end], i + 1)
                segments.append(self._segment(modality, codes, media))
                i = end + 1
            else:
                what = "closes no open segment" if t in closers else "cannot appear outside its segment"
                raise ValueError(f"id {t} ({L.name_of(t)}) at position {i} {what}")
        if text:
            segments.append(self._segment("text", torch.tensor(text) - L.offset("text"), media))
        return Prompt(segments)

    def _segment(self, modality: str, codes: torch.Tensor, media: bool) -> Segment:
        tok = self.tokenizers[modality]
        if media:
            return tok.decode_segment(codes)
        return Text(tok.decode(codes), codes=codes) if modality == "text" else _CODES_ONLY[modality](codes)

    def _parse(self, modality: str, body: list[int], start: int) -> torch.Tensor:
        """Codes of one media segment from the ids between its markers (`start` = position of body[0])."""
        L = self.layout
        if modality == "audio":
            C = L.audio_codebooks
            if not body or len(body) % C:
                raise ValueError(
                    f"audio segment at position {start} has {len(body)} ids; expected a positive "
                    f"multiple of {C} (one code per codebook per frame)"
                )
            for k, t in enumerate(body):
                r = L.ranges[f"audio:{k % C}"]
                if t not in r:
                    raise ValueError(
                        f"id {t} ({L.name_of(t) if 0 <= t < len(L) else 'out of range'}) at position "
                        f"{start + k} should be a code of audio codebook {k % C} (ids {r.start}..{r.stop - 1})"
                    )
            offsets = torch.tensor([L.offset("audio", c) for c in range(C)])
            return (torch.tensor(body).reshape(-1, C) - offsets).T.contiguous()  # (T, C) -> (C, T)
        if modality == "image":
            return self._parse_grid(body, start, L.ranges["image"], "image")
        frames, begin = [], 0
        frame_id = L.special("<|frame|>")
        for k, t in enumerate(body):
            if t == frame_id:
                frames.append(self._parse_grid(body[begin:k], start + begin, L.ranges["video"], "video frame"))
                begin = k + 1
        if begin != len(body) or not frames:
            raise ValueError(f"video segment at position {start} must be one or more frames each ended by <|frame|>")
        if len({f.shape for f in frames}) != 1:
            raise ValueError(
                f"video segment at position {start} has frames of different shapes "
                f"{sorted({tuple(f.shape) for f in frames})}"
            )
        return torch.stack(frames)

    def _parse_grid(self, body: list[int], start: int, codes: range, what: str) -> torch.Tensor:
        row_id = self.layout.special("<|row|>")
        rows, row = [], []
        for k, t in enumerate(body):
            if t == row_id:
                rows.append(row)
                row = []
            elif t in codes:
                row.append(t - codes.start)
            else:
                name = self.layout.name_of(t) if 0 <= t < len(self.layout) else "out of range"
                raise ValueError(
                    f"id {t} ({name}) at position {start + k} cannot appear inside an {what} grid; "
                    f"expected codes {codes.start}..{codes.stop - 1} or <|row|>"
                )
        if row or not rows:
            raise ValueError(f"{what} grid at position {start} must be one or more rows each ended by <|row|>")
        widths = sorted({len(r) for r in rows})
        if len(widths) != 1 or widths[0] == 0:
            raise ValueError(
                f"{what} grid at position {start} has rows of lengths {widths}; expected one positive width"
            )
        return torch.tensor(rows)

    # --- persistence ------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """SHA-256 over the layout and every tokenizer's fingerprint: equal means identical ids."""
        return sha256_json(
            {"layout": self.layout.to_json(), "tokenizers": {m: t.fingerprint() for m, t in self.tokenizers.items()}}
        )

    def save_pretrained(self, directory: PathLike) -> Path:
        """Write mmgist_vocab.json, and each tokenizer not from the zoo under mmgist_tokenizers/<modality>/.

        A tokenizer loaded from the zoo (`load_tokenizer("image-vq-f8")`) is recorded by its zoo name
        and fingerprint, not copied: the folder stays small, and loading refuses a zoo copy that changed.
        The folder may be shared with a Hugging Face model's files, which are kept. The new files are
        written beside the folder and swapped in whole, so a save killed at any point leaves the previous
        version loadable; the JSON records each tokenizer's fingerprint, so a folder mixed by hand is refused.
        """
        directory = Path(directory)
        with atomic_folder(directory, owns=lambda name: name in (VOCAB_FILE, TOKENIZERS_DIR)) as tmp:
            self.write_files(tmp)
        return directory

    def write_files(self, directory: Path) -> None:
        """Write the vocabulary's files into `directory` in place (`save_pretrained` makes that atomic)."""
        entries = {}
        for modality, tok in self.tokenizers.items():
            entries[modality] = {"name": tok.name, "fingerprint": tok.fingerprint()}
            if tok.zoo_name and _zoo_fingerprint(tok.zoo_name) == entries[modality]["fingerprint"]:
                entries[modality]["zoo"] = tok.zoo_name
            else:
                tok.write_files(directory / TOKENIZERS_DIR / modality)
        header = versioned(
            FORMAT,
            FORMAT_VERSION,
            layout=self.layout.to_json(),
            fingerprint=self.fingerprint(),
            tokenizers=entries,
        )
        write_json_atomic(directory / VOCAB_FILE, header)

    @classmethod
    def from_pretrained(cls, directory: PathLike) -> SharedVocabulary:
        """Load a vocabulary saved by `save_pretrained`, checking it matches its tokenizers."""
        directory = existing_dir(directory, "vocabulary folder")
        header = read_versioned_json(directory / VOCAB_FILE, FORMAT, (FORMAT_VERSION,))
        entries: Mapping[str, Any] = header.get("tokenizers", {})
        if not isinstance(entries, dict) or not all(isinstance(e, dict) for e in entries.values()):
            raise ValueError(f"{str(directory / VOCAB_FILE)!r}: tokenizers must map modalities to objects")
        if "text" not in entries or not set(entries) <= {"text", "image", "audio", "video"}:
            raise ValueError(
                f"{str(directory)!r}: vocabulary lists tokenizers {sorted(entries)}; "
                "expected text plus any of image, audio, video"
            )
        toks = {}
        for modality, entry in entries.items():
            if "zoo" in entry:
                tok = load_tokenizer(entry["zoo"])
                where = f"the zoo's {entry['zoo']!r}"
            else:
                tok = ModalityTokenizer.from_pretrained(directory / TOKENIZERS_DIR / modality)
                where = f"the saved {modality} tokenizer ({tok.name!r})"
            if tok.name != entry.get("name") or tok.fingerprint() != entry.get("fingerprint"):
                raise ValueError(
                    f"{str(directory)!r}: {where} does not match the {modality} tokenizer the vocabulary "
                    f"was built with ({entry.get('name')!r}, fingerprint {str(entry.get('fingerprint'))[:12]}..., "
                    f"found {tok.fingerprint()[:12]}...)"
                )
            toks[modality] = tok
        vocab = cls(**toks)
        if vocab.layout.to_json() != header.get("layout"):
            raise ValueError(
                f"{str(directory)!r}: recorded layout {header.get('layout')} does not match the "
                f"tokenizers' layout {vocab.layout.to_json()}"
            )
        return vocab

    # --- models -------------------------------------------------------------------------------
    def resize_model(self, model: PreTrainedModel) -> PreTrainedModel:
        """Resize a Hugging Face causal LM's embeddings (and tied head) to len(self); set pad/bos/eos ids."""
        if not hasattr(model, "resize_token_embeddings") or model.get_input_embeddings() is None:
            raise TypeError(f"resize_model needs a Hugging Face PreTrainedModel, got {type(model).__name__}")
        model.resize_token_embeddings(len(self))
        for obj in (model.config, getattr(model, "generation_config", None)):
            if obj is not None:
                obj.pad_token_id, obj.bos_token_id, obj.eos_token_id = self.pad_id, self.bos_id, self.eos_id
        return model

    def __repr__(self) -> str:
        toks = ", ".join(f"{m}={t.name!r}" for m, t in self.tokenizers.items())
        return f"SharedVocabulary({toks}; {len(self)} ids)"


def _zoo_fingerprint(name: str) -> str | None:
    """Fingerprint of the zoo's tokenizer `name` as it is on disk now (None when it is not there)."""
    try:
        return load_tokenizer(name).fingerprint()
    except (ValueError, FileNotFoundError):
        return None
