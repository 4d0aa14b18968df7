"""pix2pix-zoo plugin: the paper's colourisation task (section 4), L channel -> ab channels of Lab.

It registers, through the zoo's hooks:

* the dataset ``colorize`` (``--data colorize:PATH``): any folder of photos as (L, ab) pairs;
* the codec ``lab_colorize``, which shows those tensors as RGB pictures and turns a user's photos
  into the generator's input (sample grids, ``zoo translate``);
* the command ``zoo colorize-scan PATH``: photos, nearly grey photos and unreadable files per split;
* the catalog entry ``colorize_synth_demo``.
"""

from pix2pix_zoo import hookimpl
from pix2pix_zoo_colorize.dataset import colorize
from pix2pix_zoo_colorize.lab import LabColorize
from pix2pix_zoo_colorize.scan import register_scan_command

__all__ = ["LabColorize", "colorize"]

DEMO_TRANSLATOR = {
    "name": "colorize_synth_demo",
    "spec": "unet_128(ngf=4)+patch70(ndf=4)+l1cgan",
    "task": "grey photos (L channel) -> their colours (ab channels)",
    "dataset": "colorize",
    "direction": "AtoB",
    "in_channels": 1,
    "out_channels": 2,
    "train_size": 128,
    "inference_mode": "eval",
    "license": "BSD-3-Clause",
    "citation": "Isola, Zhu, Zhou and Efros, Image-to-Image Translation with Conditional Adversarial Networks, "
                "CVPR 2017 (section 4, colourisation)",
    "source": "pix2pix-zoo-colorize release assets",
    "notes": "A demonstration, not a useful colouriser: a tiny U-Net (ngf=4) trained briefly on synthetic "
             "colourful images, to show the plugin end to end (zoo pull, zoo translate through the "
             "lab_colorize codec). No sha256 is published: the first download's is recorded.",
    "weights": {
        "url": "https://github.com/pix2pix-zoo/pix2pix-zoo-colorize/releases/download/v0.1.0/"
               "colorize_synth_demo.safetensors",
        "format": "safetensors",
    },
}


@hookimpl
def register_datasets(register):
    register("colorize", colorize, summary="your photos as L -> ab pairs: --data colorize:PATH (Lab colourisation)")


@hookimpl
def register_codecs(register):
    register("lab_colorize", LabColorize, summary="L and ab channels of Lab <-> RGB pictures (colourisation)")


@hookimpl
def register_translators(register):
    register(DEMO_TRANSLATOR)


@hookimpl
def register_commands(app):
    register_scan_command(app)
