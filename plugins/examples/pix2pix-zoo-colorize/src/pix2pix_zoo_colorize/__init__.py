"""pix2pix-zoo plugin: the paper's colourisation task (section 4), L channel -> ab channels of Lab.

It registers, through the zoo's hooks:

* the dataset ``colorize`` (``--data colorize:PATH``): any folder of photos as (L, ab) pairs;
* the codec ``lab_colorize``, which shows those tensors as RGB pictures and turns a user's photos
  into the generator's input (sample grids, ``zoo translate``);
* the command ``zoo colorize-scan PATH``: photos, nearly grey photos and unreadable files per split;
* the catalog entry ``colorize_synthfacades_demo``, whose weights ship inside the package.
"""

from pathlib import Path

from pix2pix_zoo import hookimpl
from pix2pix_zoo_colorize.dataset import ColorizeFolder
from pix2pix_zoo_colorize.lab import LabColorize
from pix2pix_zoo_colorize.scan import register_scan_command

__all__ = ["ColorizeFolder", "LabColorize"]

# Shipped inside the package (tools/make_demo_translator.py made it), so it pulls with no network.
DEMO_WEIGHTS = Path(__file__).parent / "weights" / "colorize_synthfacades_demo.safetensors"
DEMO_TRANSLATOR = {
    "name": "colorize_synthfacades_demo",
    "spec": "unet_128(ngf=8)+patch70(ndf=8)+l1cgan",
    "task": "grey photos (L channel) -> their colours (ab channels)",
    "dataset": "colorize",
    "direction": "AtoB",
    "in_channels": 1,
    "out_channels": 2,
    "train_size": 128,
    "inference_mode": "paper",
    "license": "BSD-3-Clause",
    "citation": "Isola, Zhu, Zhou and Efros, Image-to-Image Translation with Conditional Adversarial Networks, "
                "CVPR 2017 (section 4, colourisation)",
    "source": "pix2pix-zoo-colorize (tools/make_demo_translator.py, shipped in the package)",
    "notes": "A demonstration of a plugin shipping a translator, not a useful colouriser: a small U-Net (ngf=8) "
             "trained for 2,500 steps on 200 synthfacades photos (the zoo's procedural facades) read through "
             "colorize:PATH. On 20 held-out ones it is no better than the mean training colour (L1 0.0427 vs "
             "0.0430, PSNR 25.2 vs 25.5 dB on the ab channels).",
    "weights": {
        "url": DEMO_WEIGHTS.as_uri(),
        "format": "safetensors",
        "sha256": "7af6c806e8a4bfb540a3abe923fdd220ae70d2d16cb06b3217a79709711e3f3c",
        "size_bytes": 2632336,
    },
    "metrics": {
        "data": "colorize:PATH of synthfacades photos (size 128), test split of 20, paper mode, ab channels",
        "l1": 0.04268,
        "psnr": 25.21,
        "ssim": 0.6418,
    },
}


@hookimpl
def register_datasets(register):
    register("colorize", ColorizeFolder, summary="your photos as L -> ab pairs: --data colorize:PATH (Lab colourisation)")


@hookimpl
def register_codecs(register):
    register("lab_colorize", LabColorize, summary="L and ab channels of Lab <-> RGB pictures (colourisation)")


@hookimpl
def register_translators(register):
    register(DEMO_TRANSLATOR)


@hookimpl
def register_commands(app):
    register_scan_command(app)
