"""The plugin hooks of pix2pix-zoo (pluggy project name ``pix2pix_zoo``).

Every registration hook receives a ``register`` callback; a plugin calls it once per component::

    from pix2pix_zoo import hookimpl

    @hookimpl
    def register_generators(register):
        register("my_unet", my_unet, aliases=("mu",), summary="A U-Net with ...")

``register(name, factory, *, aliases=(), summary="")`` validates at once: the name grammar, unique
names across all kinds, and the factory's signature (see :mod:`pix2pix_zoo.components`). A factory
whose module imports torch can be given by its import path,
``LazyFactory("my_plugin.nets:my_unet")``: it is imported, and its signature checked, when first
used, so that what only lists components (``zoo list``, every ``--help``) imports no torch.
Hook API version: see ``pix2pix_zoo.HOOK_API_VERSION``.
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "pix2pix_zoo"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_generators(register):
    """Register generator factories ``(in_channels, out_channels, **options) -> nn.Module``.

    The module maps images in [-1, 1] to images in [-1, 1] and has an int attribute
    ``size_multiple``: input height and width must be multiples of it.
    """


@hookspec
def register_discriminators(register):
    """Register discriminator factories ``(in_channels, **options) -> nn.Module``.

    The module returns a map of logits (one channel) and has an int attribute ``receptive_field``,
    the side in pixels of the input patch one output logit sees.
    """


@hookspec
def register_objectives(register):
    """Register objective factories ``(**options) -> Objective`` (see :mod:`pix2pix_zoo.interfaces`)."""


@hookspec
def register_datasets(register):
    """Register paired dataset factories ``(root, split, **options) -> PairedDataset``."""


@hookspec
def register_codecs(register):
    """Register image codec factories ``(**options) -> ImageCodec`` (see :mod:`pix2pix_zoo.interfaces`).

    A codec relates pictures to tensors for data that are not plain grey or RGB images (e.g. the L
    and ab channels of colourisation); a dataset names its codec in ``DatasetInfo.codec`` and a
    translator's card keeps the name, so sample grids and ``zoo translate`` show RGB pictures.
    """


@hookspec
def register_translators(register):
    """Add pretrained translators to the catalog (``zoo list``, ``zoo pull``).

    ``register(entry)`` takes a :class:`~pix2pix_zoo.translators.TranslatorEntry` or a mapping with the
    fields of a registry TOML file (``weights`` and ``metrics`` as nested mappings; see
    ``registry/README.md``) and validates it at once.
    """


@hookspec
def register_recipes(register):
    """Add sweep recipes (``zoo sweep --recipe NAME``).

    ``register(name, text, summary="")`` takes a sweep file's TOML text (``[defaults]`` and
    ``[[run]]`` tables; see :mod:`pix2pix_zoo.experiments.sweep`) and checks its form at once; the
    runs are checked against the installed components when the recipe is used.
    """


@hookspec
def register_commands(app):
    """Add commands to the ``zoo`` command line; ``app`` is the root ``typer.Typer``."""
