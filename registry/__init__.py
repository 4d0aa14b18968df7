"""The official catalog of pretrained translators: one TOML file per translator (see README.md)."""
