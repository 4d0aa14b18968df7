"""Train the demonstration translator this plugin ships, ``colorize_synthfacades_demo``.

    PYTHONPATH=src python tools/make_demo_translator.py [--epochs 6]

The photos are the zoo's own synthfacades photos (the B side: rendered facades, no download),
written to a temporary folder and read back through ``--data colorize:PATH`` like anyone's photos.
A tiny U-Net (ngf=8) learns to colour them for a few minutes on a CPU; the weights go to
``src/pix2pix_zoo_colorize/weights/`` and the script prints the figures (sha256, size, held-out
metrics) that ``__init__.py``'s catalog entry states. It is a demonstration of a plugin shipping a
translator, not a useful colouriser of real photos.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import pix2pix_zoo_colorize
from PIL import Image

from pix2pix_zoo import plugins
from pix2pix_zoo.data import open_dataset
from pix2pix_zoo.engine.config import TrainConfig
from pix2pix_zoo.engine.trainer import Trainer

HERE = Path(__file__).resolve().parents[1]
TARGET = HERE / "src" / "pix2pix_zoo_colorize" / "weights" / "colorize_synthfacades_demo.safetensors"
SPEC = "unet_128(ngf=8)+patch70(ndf=8)+l1cgan"


def export_photos(folder: Path, size: int, counts: dict[str, int]) -> None:
    for split, count in counts.items():
        dataset = open_dataset("synthfacades", split, size=size)
        (folder / split).mkdir(parents=True)
        for index in range(count):
            photo = dataset[index]["b"].permute(1, 2, 0).numpy()
            Image.fromarray(photo).save(folder / split / f"{index:04d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6, help="at constant rate, then as many decaying to zero")
    args = parser.parse_args()
    if "colorize" not in plugins.get_registry():  # run from the source tree (PYTHONPATH=src), not installed
        plugins.register(pix2pix_zoo_colorize)
    with tempfile.TemporaryDirectory() as scratch:
        photos = Path(scratch) / "photos"
        export_photos(photos, 128, {"train": 200, "test": 20})
        config = TrainConfig(spec=SPEC, data=f"colorize:{photos}", epochs=args.epochs, epochs_decay=args.epochs,
                             batch_size=4, load_size=143, crop_size=128, workers=2, sample_every=10**9, seed=0)
        run = Path(scratch) / "run"
        Trainer(config, run, progress=True).fit()
        TARGET.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run / "translator" / "model.safetensors", TARGET)
        evaluation = json.loads((run / "eval.json").read_text())
    data = TARGET.read_bytes()
    print(json.dumps({"sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data), "eval": evaluation}, indent=2))


if __name__ == "__main__":
    main()
