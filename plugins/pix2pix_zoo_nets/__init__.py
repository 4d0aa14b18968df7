"""The networks of pix2pix (Isola et al. 2017) and of its reference PyTorch implementation."""

from pix2pix_zoo import hookimpl
from pix2pix_zoo_nets import patchgan, resnet, timm_unet, unet


@hookimpl
def register_generators(register):
    register(
        "unet_256",
        unet.unet_256,
        aliases=("unet",),
        summary="U-Net, 8 downsamplings (256x256), the paper's generator",
    )
    register("unet_128", unet.unet_128, summary="U-Net, 7 downsamplings (128x128)")
    register(
        "encdec_256",
        unet.encdec_256,
        aliases=("encdec",),
        summary="the paper's encoder-decoder baseline: U-Net without skips (256x256)",
    )
    register("encdec_128", unet.encdec_128, summary="encoder-decoder without skips (128x128)")
    register(
        "resnet_9blocks",
        resnet.resnet_9blocks,
        summary="ResNet generator, 9 residual blocks (reference default for 256x256)",
    )
    register(
        "resnet_6blocks",
        resnet.resnet_6blocks,
        summary="ResNet generator, 6 residual blocks (reference default for 128x128)",
    )
    register(
        "timm_unet",
        timm_unet.timm_unet,
        summary="U-Net decoder on a timm features_only encoder (backbone from timm.list_models())",
    )


@hookimpl
def register_discriminators(register):
    register("pixel", patchgan.pixel, summary="1x1 PixelGAN: classifies each pixel")
    register("patch16", patchgan.patch16, summary="16x16 PatchGAN (1 stride-2 layer)")
    register("patch34", patchgan.patch34, summary="34x34 PatchGAN (2 stride-2 layers)")
    register(
        "patch70",
        patchgan.patch70,
        aliases=("patch",),
        summary="70x70 PatchGAN (3 stride-2 layers), the paper's discriminator",
    )
    register("patch142", patchgan.patch142, summary="142x142 PatchGAN (4 stride-2 layers)")
    register("image", patchgan.image, summary="286x286 ImageGAN: each logit sees the whole image")
