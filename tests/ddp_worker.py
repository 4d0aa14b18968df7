"""Launched by torchrun from tests/test_distributed.py: trains one rank, then saves its generator.

Usage: ddp_worker.py OUT_DIR CONFIG_JSON
"""

import json
import os
import sys
from pathlib import Path

from safetensors.torch import save_file

from pix2pix_zoo.engine.checkpoint import module_tensors
from pix2pix_zoo.engine.config import TrainConfig
from pix2pix_zoo.engine.trainer import Trainer

out = Path(sys.argv[1])
trainer = Trainer(TrainConfig(**json.loads(sys.argv[2])), out / "run", progress=False)
trainer.fit()
save_file(module_tensors(trainer.models.generator), out / f"rank{os.environ.get('RANK', '0')}.safetensors")
