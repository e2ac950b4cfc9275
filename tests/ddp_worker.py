"""Run by torchrun in test_train.py: a few DDP steps of a tiny image tokenizer, then each rank's fingerprint."""

import sys
from pathlib import Path

import torch

from mmgist.tokenizers.train_image import train_image_tokenizer
from mmgist.train import rank_and_world

data, out = Path(sys.argv[1]), Path(sys.argv[2])
torch.set_num_threads(1)
result = train_image_tokenizer(
    data,
    out / "tok",
    preset="tiny",
    steps=4,
    batch_size=2,
    crop_size=8,
    lr=1e-3,
    checkpoint_dir=out / "run",
    progress=False,
)
rank, world = rank_and_world()
(out / f"rank{rank}.txt").write_text(f"{world} {result.tokenizer.fingerprint()}")
torch.distributed.destroy_process_group()
