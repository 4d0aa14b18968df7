"""``python -m pix2pix_zoo``: the same command line as ``zoo`` (and what torchrun launches)."""

from pix2pix_zoo.cli import main

if __name__ == "__main__":
    main(prog_name="python -m pix2pix_zoo")
