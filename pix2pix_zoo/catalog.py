"""Deprecated: the translator catalog is :mod:`pix2pix_zoo.translators`.

Plugins written before the move import ``TranslatorEntry`` (for ``register_translators``) or
``find_translator`` from here; every public name still resolves to the same object, with a
DeprecationWarning naming the new module. (The dataset catalog is :mod:`pix2pix_zoo.data.catalog`.)
"""

from __future__ import annotations

from pix2pix_zoo import translators as new_home
from pix2pix_zoo.moved import forward_to

__getattr__ = forward_to(new_home, __name__)
