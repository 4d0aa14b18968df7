"""Experiments: many ordinary training runs from one grid (:mod:`~pix2pix_zoo.experiments.sweep`)."""
