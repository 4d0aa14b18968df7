"""Built-in plugin: the paper's objectives (l1, gan, cgan, l1gan, l1cgan)."""

from pix2pix_zoo import hookimpl
from pix2pix_zoo_objectives import pix2pix


@hookimpl
def register_objectives(register):
    register("l1", pix2pix.l1, summary="L1 reconstruction only, no discriminator")
    register("gan", pix2pix.gan, summary="unconditional GAN: D sees the output alone")
    register("cgan", pix2pix.cgan, summary="conditional GAN: D sees input and output")
    register("l1gan", pix2pix.l1gan, summary="L1 (lambda 100) + unconditional GAN")
    register("l1cgan", pix2pix.l1cgan, summary="L1 (lambda 100) + conditional GAN: the pix2pix objective")
