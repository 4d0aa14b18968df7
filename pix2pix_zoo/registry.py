"""Deprecated: the component registry is :mod:`pix2pix_zoo.components`.

Plugins written before the rename import ``Width``, ``Bounds``, ``External`` or ``did_you_mean``
from here; every name still resolves to the same object, with a DeprecationWarning naming the new
module. (The translator catalog's entry files are the other "registry": ``registry/*.toml``.)
"""

from __future__ import annotations

from pix2pix_zoo import components as new_home
from pix2pix_zoo.moved import forward_to

__getattr__ = forward_to(new_home, __name__)
