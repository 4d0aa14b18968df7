"""Built-in plugin: the reference paired datasets, generic folder readers and synthfacades.

Registered by import path with their infos (infos.py): ``zoo data list`` shows them without importing
the readers, nor torch with them, which a dataset imports when it is opened.
"""

from pix2pix_zoo import hookimpl
from pix2pix_zoo.components import LazyFactory
from pix2pix_zoo_datasets import infos


@hookimpl
def register_datasets(register):
    def reference(name: str, info, summary: str) -> None:
        register(name, LazyFactory(f"pix2pix_zoo_datasets.reference:{name}", info=info), summary=summary)

    reference("facades", infos.FACADES, "CMP Facades: photo | architectural labels; labels -> photo (BtoA)")
    reference(
        "cityscapes", infos.CITYSCAPES, "Cityscapes: street photo | labels; labels -> photo (BtoA); prepared locally"
    )
    reference("maps", infos.MAPS, "Google Maps: aerial photo | map (AtoB)")
    reference("edges2shoes", infos.EDGES2SHOES, "UT Zappos50K: edges | shoe photo (AtoB)")
    reference("edges2handbags", infos.EDGES2HANDBAGS, "iGAN handbags: edges | handbag photo (AtoB)")
    reference("night2day", infos.NIGHT2DAY, "Transient Attributes: night | day webcam frames (AtoB)")
    # The folder readers read files you name: they have no info (None says so without importing them).
    register("folder", LazyFactory("pix2pix_zoo_datasets.folders:folder", info=None),
             summary="your side-by-side AB images: --data folder:PATH reads PATH/<split>/")
    register("pairs", LazyFactory("pix2pix_zoo_datasets.folders:pairs", info=None),
             summary="your A and B images matched by file name: PATH/A/<split>/, PATH/B/<split>/")
    register("synthfacades", LazyFactory("pix2pix_zoo_datasets.synthfacades:synthfacades", info=infos.SYNTHFACADES),
             summary="procedural facade label maps -> photos, embedded (no download)")
