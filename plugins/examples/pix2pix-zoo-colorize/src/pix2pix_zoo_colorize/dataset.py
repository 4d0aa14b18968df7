"""``--data colorize:PATH``: any folder of photos as colourisation pairs, A = L and B = ab (Lab).

Built on the zoo's :class:`~pix2pix_zoo.data.photos.PhotoPairs`, which lists the photos, splits them
(``PATH/<split>/`` folders, else a stable hash of each photo's path) and decodes them; this plugin
only turns a photo into its pair. Grey photos are fine (their ab is 128, no colour). See :mod:`.lab`
for the uint8 mapping of L and ab.
"""

from __future__ import annotations

from torch import Tensor

from pix2pix_zoo.data.photos import PhotoPairs
from pix2pix_zoo.interfaces import DatasetInfo
from pix2pix_zoo_colorize.lab import photo_to_lab_uint8

INFO = DatasetInfo(
    name="colorize",
    a_channels=1,
    b_channels=2,
    default_direction="AtoB",
    task="grey L channel <-> ab colour channels (Lab)",
    license="that of your photos",
    source="your own photos (--data colorize:PATH); the task is the colourisation experiment of Isola, "
           "Zhu, Zhou and Efros, Image-to-Image Translation with Conditional Adversarial Networks, CVPR 2017, "
           "section 4",
    splits=("train", "val", "test"),
    codec="lab_colorize",
    reads_your_files=True,
)


class ColorizeFolder(PhotoPairs):
    """Your photos as L -> ab pairs (``--data colorize:PATH``)."""

    info = INFO

    def make_pair(self, photo: Tensor, name: str) -> tuple[Tensor, Tensor]:
        return photo_to_lab_uint8(photo)
