"""The files ``zoo plugins new NAME`` writes (see :mod:`pix2pix_zoo.scaffold`); ``${...}`` fields are filled in."""
