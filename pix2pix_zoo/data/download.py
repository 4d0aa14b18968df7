"""Deprecated: verified downloads are :mod:`pix2pix_zoo.download` (datasets, translators and
checkpoints all use them). Dataset plugins written before the move import ``download`` or
``staged_directory`` from here; every name still resolves, with a DeprecationWarning."""

from __future__ import annotations

from pix2pix_zoo import download as new_home
from pix2pix_zoo.moved import forward_to

__getattr__ = forward_to(new_home, __name__)
