"""Run by torchrun in the DDP tests: a few steps of a tiny model, then each rank writes its weights' hash.

ddp_worker.py image DATA_DIR OUT_DIR     tiny image tokenizer on the images in DATA_DIR
ddp_worker.py audio DATA_DIR OUT_DIR     tiny audio tokenizer (rvq; audio-plain-rvq, audio-rfsq) on DATA_DIR
ddp_worker.py video DATA_DIR OUT_DIR     tiny video tokenizer on clips of the images in DATA_DIR (init: DATA_DIR/init)
ddp_worker.py lm DATA_DIR OUT_DIR        tiny LM on DATA_DIR/train.jsonl
"""

import hashlib
import sys
from pathlib import Path

import torch
import toy_tokenizers  # noqa: F401  (run as a script: its folder, tests/support, is on the path)

from mmgist import ByteTokenizer, SharedVocabulary, create_tokenizer
from mmgist.lm import build_lm
from mmgist.lm.train import train_lm
from mmgist.tokenizers.train_audio import train_audio_tokenizer
from mmgist.tokenizers.train_image import train_image_tokenizer
from mmgist.tokenizers.train_video import train_video_tokenizer
from mmgist.train import init_distributed

mode, data, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
torch.set_num_threads(1)
rank, world = init_distributed()
if mode == "image":
    model = train_image_tokenizer(
        data,
        out / "tok",
        preset="tiny",
        steps=4,
        batch_size=2,
        crop_size=8,
        lr=1e-3,
        checkpoint_dir=out / "run",
        progress=False,
    ).tokenizer
elif mode.startswith("audio"):  # "audio" (rvq) or "audio-<quantizer>"
    quantizer = mode.removeprefix("audio-") if mode != "audio" else "rvq"
    model = train_audio_tokenizer(
        data, out / "tok", preset="tiny", steps=6, batch_size=2, seconds=0.1, checkpoint_dir=out / "run",
        progress=False, quantizer=quantizer,
    ).tokenizer  # fmt: skip
elif mode == "video":
    model = train_video_tokenizer(
        data, out / "tok", init=data / "init", preset="tiny", steps=4, batch_size=2, frames=5, size=8,
        checkpoint_dir=out / "run", progress=False,
    ).tokenizer  # fmt: skip
else:
    torch.manual_seed(0)
    vocab = SharedVocabulary(text=ByteTokenizer(), image=create_tokenizer("toy-image"))
    model = build_lm(vocab, preset="tiny")
    train_lm(
        model,
        vocab,
        data / "train.jsonl",
        out / "lm",
        steps=4,
        batch_size=2,
        cache_dir=out / f"cache{rank}",
        run_dir=out / "lm-run",
        progress=False,
    )
h = hashlib.sha256()
for k, v in sorted(model.state_dict().items()):
    h.update(k.encode() + v.detach().contiguous().numpy().tobytes())
(out / f"rank{rank}.txt").write_text(f"{world} {h.hexdigest()}")
torch.distributed.destroy_process_group()
