"""Where the zoo keeps what it downloads and makes: ``$ZOO_HOME`` (default ``~/.cache/pix2pix-zoo``)."""

from __future__ import annotations

import os
from pathlib import Path

HOME_VARIABLE = "ZOO_HOME"


def zoo_home() -> Path:
    """The zoo's cache root; not created here."""
    value = os.environ.get(HOME_VARIABLE)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "pix2pix-zoo"


def datasets_dir() -> Path:
    """Where named datasets are downloaded and extracted: ``$ZOO_HOME/datasets/<name>``."""
    return zoo_home() / "datasets"


def translators_dir() -> Path:
    """Where pulled translators are cached: ``$ZOO_HOME/translators/<name>/model.safetensors``."""
    return zoo_home() / "translators"


def user_registry_dir() -> Path:
    """The user's own catalog entries: ``$ZOO_HOME/registry/*.toml``."""
    return zoo_home() / "registry"
