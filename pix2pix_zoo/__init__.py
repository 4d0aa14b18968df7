"""pix2pix-zoo: a plugin-based model zoo for paired image-to-image translation (pix2pix)."""

from importlib.metadata import PackageNotFoundError, version

from pix2pix_zoo.hookspecs import hookimpl

try:
    __version__ = version("pix2pix-zoo")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

HOOK_API_VERSION = 1
"""Bumped when a hook's signature or the ``register`` contract changes incompatibly."""

__all__ = ["HOOK_API_VERSION", "__version__", "hookimpl"]
