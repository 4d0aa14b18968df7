"""Built-in plugin: the reference paired datasets, generic folder readers and synthfacades."""

from pix2pix_zoo import hookimpl
from pix2pix_zoo_datasets import folders, reference, synthfacades


@hookimpl
def register_datasets(register):
    reference.register_all(register)
    folders.register_all(register)
    synthfacades.register_all(register)
