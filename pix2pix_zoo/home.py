"""Where the zoo keeps what it downloads and makes: ``$ZOO_HOME`` (default ``~/.cache/pix2pix-zoo``)."""

from __future__ import annotations

import os
from pathlib import Path

from pix2pix_zoo.errors import ZooError

HOME_VARIABLE = "ZOO_HOME"


def zoo_home() -> Path:
    """The zoo's cache root; not created here, but refused at once (one line naming ZOO_HOME) where
    it, or the nearest part of it that exists, is not a folder."""
    value = os.environ.get(HOME_VARIABLE)
    home = Path(value).expanduser() if value else Path.home() / ".cache" / "pix2pix-zoo"
    existing = nearest_existing(home)
    if not existing.is_dir():
        where = f"{HOME_VARIABLE}={value}" if value else f"the zoo's home {home} (set {HOME_VARIABLE} to another)"
        raise ZooError(f"{where} is not usable: {existing} is not a folder")
    return home


def nearest_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists: a folder can be made at ``path`` only if this is one."""
    return next(part for part in (path, *path.parents) if part.exists() or part == part.parent)


def datasets_dir() -> Path:
    """Where named datasets are downloaded and extracted: ``$ZOO_HOME/datasets/<name>``."""
    return zoo_home() / "datasets"


def translators_dir() -> Path:
    """Where pulled translators are cached: ``$ZOO_HOME/translators/<name>/model.safetensors``."""
    return zoo_home() / "translators"


def user_registry_dir() -> Path:
    """The user's own catalog entries: ``$ZOO_HOME/registry/*.toml``."""
    return zoo_home() / "registry"
