"""Real audio that installs offline, split into train and held-out files, and random training segments.

    gather_audio(out)                 Debian's sound packages + espeak-ng speech -> out/{train,heldout}/<kind>/*.flac
    RandomSegments(out / "train", 1.0)  step-indexed random segments: segments(step, rank, batch) is a pure function

Kinds (the benchmark reports them apart):
    speech-en       English voice lines of Fish Fillets NG (fillets-ng-data: sound/<room>/en/)
    speech-cs       Czech voice lines of Fish Fillets NG (fillets-ng-data-cs: sound/<room>/cs/)
    speech-synth    English sentences (Python's own docstrings) spoken by espeak-ng with many voices,
                    variants, speeds and pitches
    music           Fish Fillets NG's music tracks
    effects         sound effects: freedesktop's sound theme, Fish Fillets NG's game sounds, ALSA's test sounds
Everything is resampled to 16 kHz mono and written as 16-bit FLAC.

Held out, never trained on: a group (a Fillets room with all its lines in both languages, a music
track, one effect, one synthesized sentence) is held out when the SHA-256 of its key, read as a
number, is divisible by HELDOUT_EVERY, so the split is the same on every machine. Held-out speech
therefore holds sentences never heard in training, by the same actors. `fillets-ng-data-nl` is
reserved for independent evaluation: `gather_audio` never reads it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
import re
import shutil
import subprocess
from pathlib import Path

import torch

from ..io import load_audio, save_audio
from ..storage import PathLike, write_json_atomic

RATE = 16000
HELDOUT_EVERY = 4
FILLETS = Path("/usr/share/games/fillets-ng")
EFFECT_DIRS = (Path("/usr/share/sounds/freedesktop/stereo"), Path("/usr/share/sounds/alsa"))
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3")
KINDS = ("speech-en", "speech-cs", "speech-synth", "music", "effects")
ESPEAK_VOICES = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan",
                 "en-gb-x-gbcwmd")  # fmt: skip
ESPEAK_VARIANTS = ("", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7", "+f1", "+f2", "+f3", "+f4", "+f5",
                   "+croak", "+klatt", "+klatt2")  # fmt: skip
DOC_MODULES = ("os", "re", "json", "collections", "itertools", "functools", "pathlib", "subprocess", "shutil",
               "threading", "socket", "datetime", "random", "statistics", "string", "textwrap", "zipfile",
               "tarfile", "csv", "argparse", "logging", "unittest", "inspect", "typing", "decimal")  # fmt: skip


@dataclasses.dataclass
class AudioCollection:
    train: Path
    heldout: Path
    manifest: list[dict]


def heldout(key: str) -> bool:
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % HELDOUT_EVERY == 0


def _sources() -> list[tuple[str, str, Path]]:
    """(kind, group key, path) of every installed source file."""
    rows = []
    sound = FILLETS / "sound"
    if sound.is_dir():
        for path in sorted(sound.rglob("*")):
            if path.suffix.lower() not in AUDIO_SUFFIXES or not path.is_file():
                continue
            parts = path.relative_to(sound).parts
            if len(parts) == 3 and parts[1] in ("en", "cs"):  # room/lang/line.ogg
                rows.append((f"speech-{parts[1]}", f"fillets-room:{parts[0]}", path))
            elif len(parts) == 3 and parts[1] == "nl":
                continue  # fillets-ng-data-nl: reserved, never read
            else:
                rows.append(("effects", f"fillets-sound:{'/'.join(parts)}", path))
    music = FILLETS / "music"
    if music.is_dir():
        rows += [("music", f"music:{p.name}", p) for p in sorted(music.iterdir()) if p.suffix.lower() in AUDIO_SUFFIXES]
    for folder in EFFECT_DIRS:
        if folder.is_dir():
            rows += [("effects", f"effect:{p.name}", p) for p in sorted(folder.iterdir())
                     if p.suffix.lower() in AUDIO_SUFFIXES]  # fmt: skip
    return rows


def _sentences(limit: int) -> list[str]:
    """Plain English sentences of 6 to 24 words from the docstrings of standard-library modules."""
    import importlib

    seen, out = set(), []
    for name in DOC_MODULES:
        mod = importlib.import_module(name)
        docs = [mod.__doc__] + [getattr(getattr(mod, a, None), "__doc__", None) for a in sorted(dir(mod))]
        for doc in (d for d in docs if isinstance(d, str)):
            for s in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())):
                if not re.fullmatch(r"[A-Z][A-Za-z ,;'-]+[.!?]", s) or not 6 <= len(s.split()) <= 24 or s in seen:
                    continue
                seen.add(s)
                out.append(s)
                if len(out) >= limit:
                    return out
    return out


def _synthesize(out: Path, count: int, seed: int = 0) -> list[dict]:
    """Speak `count` sentences with espeak-ng (random voice, variant, speed, pitch) into out/<split>/speech-synth."""
    if shutil.which("espeak-ng") is None:
        return []
    rng = random.Random(seed)
    rows = []
    for sentence in _sentences(count):
        key = f"synth:{sentence}"
        split = "heldout" if heldout(key) else "train"
        voice = rng.choice(ESPEAK_VOICES) + rng.choice(ESPEAK_VARIANTS)
        speed, pitch = rng.randint(120, 210), rng.randint(20, 80)
        target = out / split / "speech-synth" / f"synth-{hashlib.sha256(key.encode()).hexdigest()[:12]}.flac"
        if not target.exists():
            wav = target.with_suffix(".wav")
            wav.parent.mkdir(parents=True, exist_ok=True)
            cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), sentence]
            subprocess.run(cmd, check=True, capture_output=True)
            wave, rate = load_audio(wav, sample_rate=RATE, mono=True)
            save_audio(target, wave, rate)
            wav.unlink()
        rows.append({"kind": "speech-synth", "group": key, "source": f"espeak-ng {voice} -s {speed} -p {pitch}",
                     "text": sentence, "split": split, "file": str(target.relative_to(out))})  # fmt: skip
    return rows


def gather_audio(out: PathLike, synth_sentences: int = 600) -> AudioCollection:
    """Collect every installed audio source (and espeak-ng speech) into out/train and out/heldout.

    Writes 16 kHz mono FLAC per source file and out/manifest.json (kind, group, source, SHA-256,
    seconds, split). Missing packages are skipped; files already written are reused. Raises if
    nothing at all is found."""
    out = Path(out)
    rows = []
    for kind, key, path in _sources():
        split = "heldout" if heldout(key) else "train"
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", "_".join(path.with_suffix(".flac").parts[-3:]))
        target = out / split / kind / name
        if not target.exists():
            try:
                wave, rate = load_audio(path, sample_rate=RATE, mono=True)
            except ValueError:
                continue  # an unreadable or empty file in a package: skip it
            save_audio(target, wave.clamp(-1, 1), rate)
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        rows.append({"kind": kind, "group": key, "source": str(path), "split": split, "sha256": sha,
                     "file": str(target.relative_to(out))})  # fmt: skip
    rows += _synthesize(out, synth_sentences)
    if not rows:
        raise FileNotFoundError(
            "no audio found: install fillets-ng-data, fillets-ng-data-cs, sound-theme-freedesktop, alsa-utils and "
            "espeak-ng (`make audio-data`)"
        )
    for row in rows:
        import av

        with av.open(str(out / row["file"])) as c:
            row["seconds"] = round(float(c.duration or 0) / 1e6, 3)
    write_json_atomic(out / "manifest.json", {"files": rows, "heldout_every": HELDOUT_EVERY, "sample_rate": RATE})
    return AudioCollection(out / "train", out / "heldout", rows)


def audio_files(folder: PathLike) -> list[Path]:
    """Every audio file under `folder` (recursively), sorted; raises if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"audio folder {str(folder)!r} does not exist (run `make audio-data`)")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) under {str(folder)!r}")
    return files


class RandomSegments:
    """Random `seconds`-long segments of the audio under `folder`, at `sample_rate`, held in memory.

    A kind (the first folder below `folder`, e.g. speech-cs) is drawn by `weights` (default: equal
    across kinds present; given weights, a kind they do not name is never drawn), then a file in
    proportion to its length, then an offset. Near-silent draws (RMS below `min_rms`) are redrawn up
    to 4 times. Each segment is peak-normalized, then scaled by a
    random gain uniform in [`min_gain_db`, 0] dB; a segment still near-silent after the redraws keeps
    its level (its dither is not blown up to full scale). The default -10.5 dB (a third of the peak)
    is what audio-rvq trained with: with gains down to -20 dB its cosine-similarity first codebook
    collapsed (about 7 distinct codes per batch and no progress at step 1400), as a unit-norm lookup
    cannot say how loud a frame is.
    `segments(step, rank, batch)` is a pure function of its arguments."""

    def __init__(
        self,
        folder: PathLike,
        seconds: float,
        sample_rate: int = RATE,
        seed: int = 0,
        weights: dict[str, float] | None = None,
        min_rms: float = 3e-3,
        min_gain_db: float = -10.5,
    ) -> None:
        self.folder = Path(folder)
        self.length = round(seconds * sample_rate)
        self.seed, self.min_rms, self.min_gain_db = seed, min_rms, min_gain_db
        self.files = audio_files(folder)
        self.waves: dict[str, list[torch.Tensor]] = {}
        for path in self.files:
            kind = path.relative_to(self.folder).parts[0] if len(path.relative_to(self.folder).parts) > 1 else "audio"
            wave = load_audio(path, sample_rate=sample_rate, mono=True)[0][0]
            if wave.numel() < self.length:
                wave = torch.nn.functional.pad(wave, (0, self.length - wave.numel()))
            self.waves.setdefault(kind, []).append(wave)
        self.kinds = sorted(self.waves)
        w = weights or {}
        if unknown := sorted(set(w) - set(self.kinds)):
            raise ValueError(
                f"weights name kinds {unknown} that {str(self.folder)!r} does not hold; kinds: {self.kinds}"
            )
        self.kind_weights = torch.tensor([float(w.get(k, 1.0 if not w else 0.0)) for k in self.kinds])
        if self.kind_weights.sum() <= 0:
            raise ValueError(f"weights {weights} give no kind a positive weight; kinds found: {self.kinds}")
        self.file_weights = {k: torch.tensor([float(x.numel()) for x in v]) for k, v in self.waves.items()}

    def seconds_per_kind(self, sample_rate: int = RATE) -> dict[str, float]:
        return {k: round(sum(x.numel() for x in v) / sample_rate, 1) for k, v in self.waves.items()}

    def segments(self, step: int, rank: int, batch_size: int) -> torch.Tensor:
        """(batch_size, 1, length) float segments for this step and process."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step * 7919 + rank)
        out = []
        for _ in range(batch_size):
            for _attempt in range(5):
                kind = self.kinds[int(torch.multinomial(self.kind_weights, 1, generator=g))]
                wave = self.waves[kind][int(torch.multinomial(self.file_weights[kind], 1, generator=g))]
                start = int(torch.randint(0, wave.numel() - self.length + 1, (1,), generator=g))
                seg = wave[start : start + self.length]
                audible = bool(seg.pow(2).mean().sqrt() >= self.min_rms)
                if audible:
                    break
            level = 10 ** (self.min_gain_db * float(torch.rand((), generator=g)) / 20)
            out.append(seg * (level / float(seg.abs().max())) if audible else seg)
        return torch.stack(out)[:, None]


def duration_seconds(rows: list[dict], kind: str | None = None, split: str | None = None) -> float:
    return math.fsum(
        r.get("seconds", 0.0) for r in rows if (kind in (None, r["kind"])) and (split in (None, r["split"]))
    )
