"""The training engine: the GAN step now; trainer, precision, DDP, checkpoints build on it."""
