"""The networks of pix2pix (Isola et al. 2017) and of its reference PyTorch implementation.

Registered by import path: the modules, and torch with them, are imported when a network is built,
never by what only lists the components.
"""

from pix2pix_zoo import hookimpl
from pix2pix_zoo.components import LazyFactory


@hookimpl
def register_generators(register):
    register(
        "unet_256",
        LazyFactory("pix2pix_zoo_nets.unet:unet_256"),
        aliases=("unet",),
        summary="U-Net, 8 downsamplings (256x256), the paper's generator",
    )
    register("unet_128", LazyFactory("pix2pix_zoo_nets.unet:unet_128"), summary="U-Net, 7 downsamplings (128x128)")
    register(
        "encdec_256",
        LazyFactory("pix2pix_zoo_nets.unet:encdec_256"),
        aliases=("encdec",),
        summary="the paper's encoder-decoder baseline: U-Net without skips (256x256)",
    )
    register(
        "encdec_128", LazyFactory("pix2pix_zoo_nets.unet:encdec_128"), summary="encoder-decoder without skips (128x128)"
    )
    register(
        "resnet_9blocks",
        LazyFactory("pix2pix_zoo_nets.resnet:resnet_9blocks"),
        summary="ResNet generator, 9 residual blocks (reference default for 256x256)",
    )
    register(
        "resnet_6blocks",
        LazyFactory("pix2pix_zoo_nets.resnet:resnet_6blocks"),
        summary="ResNet generator, 6 residual blocks (reference default for 128x128)",
    )
    register(
        "timm_unet",
        LazyFactory("pix2pix_zoo_nets.timm_unet:timm_unet"),
        summary="U-Net decoder on a timm features_only encoder (backbone from timm.list_models())",
    )


@hookimpl
def register_discriminators(register):
    register("pixel", LazyFactory("pix2pix_zoo_nets.patchgan:pixel"), summary="1x1 PixelGAN: classifies each pixel")
    register("patch16", LazyFactory("pix2pix_zoo_nets.patchgan:patch16"), summary="16x16 PatchGAN (1 stride-2 layer)")
    register("patch34", LazyFactory("pix2pix_zoo_nets.patchgan:patch34"), summary="34x34 PatchGAN (2 stride-2 layers)")
    register(
        "patch70",
        LazyFactory("pix2pix_zoo_nets.patchgan:patch70"),
        aliases=("patch",),
        summary="70x70 PatchGAN (3 stride-2 layers), the paper's discriminator",
    )
    register(
        "patch142", LazyFactory("pix2pix_zoo_nets.patchgan:patch142"), summary="142x142 PatchGAN (4 stride-2 layers)"
    )
    register(
        "image",
        LazyFactory("pix2pix_zoo_nets.patchgan:image"),
        summary="286x286 ImageGAN: each logit sees the whole image",
    )
