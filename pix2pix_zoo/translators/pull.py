"""Pulling: a catalog entry's weights downloaded, verified and converted into the cache, and
:func:`locate`, which turns a file, a folder, a run directory or a catalog name into a weights file.
Hub names (``hf://ORG/NAME[@REVISION]``) are :mod:`~pix2pix_zoo.translators.hub`'s.

:func:`pull` writes the translator to ``$ZOO_HOME/translators/<name>/model.safetensors``; a
reference PyTorch ``.pth`` is read with ``weights_only=True`` and converted, so nothing the zoo
keeps is a pickle. Where an entry publishes no sha256, the hash of the first download is recorded
beside the translator and every later download must match it. ``$ZOO_TRANSLATORS_URL`` names a
mirror that holds the same weight files under the same file names.
"""

from __future__ import annotations

import os
from pathlib import Path

from pix2pix_zoo.atomic import sigterm_as_interrupt, temporary_path, write_json_atomic
from pix2pix_zoo.download import download
from pix2pix_zoo.errors import CatalogError, ZooError
from pix2pix_zoo.translator_file import (
    WEIGHTS_FILE,
    Card,
    check_translator,
    generator_from_state,
    save_translator,
)
from pix2pix_zoo.translators.entries import SOURCE_RECORD, TranslatorEntry, check_recorded, find_translator
from pix2pix_zoo.translators.hub import is_hub_name, locate_hub, pull_hub
from pix2pix_zoo.weights import read_state_dict_pth


def pull(name: str, *, progress: bool = True) -> Path:
    """The path of translator ``name``'s ``model.safetensors``, downloaded, verified and converted
    into ``$ZOO_HOME/translators/<name>/`` first unless it is there already; a Hub name
    (``hf://ORG/NAME[@REVISION]``) is pulled again and checked against its first pull's sha256."""
    if is_hub_name(name):
        return pull_hub(name)
    entry = find_translator(name)
    if entry.downloaded:
        return entry.weights_path
    url = entry.download_url
    # A name of this call's own: a concurrent pull of the same translator downloads beside it.
    source = temporary_path(entry.directory / "weights", "download")
    with sigterm_as_interrupt():  # stopped while verifying or converting, the download is deleted too
        try:
            download(url, source, sha256=entry.sha256, size_bytes=entry.size_bytes, progress=progress)
            sha256 = entry.sha256 or _check_recorded(entry, source, url)
            if entry.format == "reference-pth":
                _convert_reference(entry, source, sha256)
            else:
                _install_safetensors(entry, source)
            if not entry.sha256 and entry.recorded_sha256 is None:
                record = {"url": entry.url, "sha256": sha256}
                write_json_atomic(entry.directory / SOURCE_RECORD, record, durable=True)
        finally:
            source.unlink(missing_ok=True)
    return entry.weights_path


def _check_recorded(entry: TranslatorEntry, source: Path, url: str) -> str:
    """The download's sha256, which must match the one recorded at the first download if there is one."""
    return check_recorded(source, entry.directory, lambda recorded, actual: (
        f"sha256 mismatch for {url}: the first download of {entry.name!r} was {recorded}, this one is "
        f"{actual}; the download was deleted (delete {entry.directory / SOURCE_RECORD} to accept it)"
    ))


def _install_safetensors(entry: TranslatorEntry, source: Path) -> None:
    """Install a downloaded translator once its card, size multiple and weight shapes are checked
    (and match the entry): until then its hash is not recorded as trusted."""
    try:
        card = check_translator(source, entry.download_url)
    except ZooError as error:  # reported as the catalog's error, like every other pull failure
        raise CatalogError(str(error)) from None
    if card.spec != entry.spec:
        raise CatalogError(f"{entry.name}: the downloaded translator is {card.spec!r}, the catalog says {entry.spec!r}")
    if (card.in_channels, card.out_channels) != (entry.in_channels, entry.out_channels):
        raise CatalogError(
            f"{entry.name}: the downloaded translator maps {card.in_channels} to {card.out_channels} channels, "
            f"the catalog says {entry.in_channels} to {entry.out_channels}"
        )
    source.replace(entry.weights_path)


def _convert_reference(entry: TranslatorEntry, source: Path, sha256: str) -> None:
    """Load a reference PyTorch state dict without executing anything, check it against the entry's
    generator on the meta device, and save it as a translator."""
    try:
        state = read_state_dict_pth(source, entry.download_url)
        generator = generator_from_state(entry.spec, entry.in_channels, entry.out_channels, state, entry.download_url)
    except ZooError as error:  # reported as the catalog's error, like every other pull failure
        raise CatalogError(str(error)) from None
    card = Card(
        spec=entry.spec,
        in_channels=entry.in_channels,
        out_channels=entry.out_channels,
        direction=entry.direction,
        size_multiple=generator.size_multiple,
        inference_mode=entry.inference_mode,  # type: ignore[arg-type]
        dataset=entry.dataset,
        task=entry.task,
        metrics=entry.metrics,
        license=entry.license,
        provenance={
            "catalog": entry.name,
            "origin": entry.origin,
            "url": entry.url,
            "sha256": sha256,
            "format": entry.format,
            "train_size": entry.train_size,
            "citation": entry.citation,
            "source": entry.source,
        },
    )
    try:
        save_translator(entry.directory, generator, card)
    except ZooError as error:
        raise CatalogError(str(error)) from None


def locate(name_or_path: str | os.PathLike[str]) -> Path:
    """The weights file a name or path stands for: a ``.safetensors`` file, a folder holding
    ``model.safetensors`` (or a run directory holding ``translator/model.safetensors``), else a
    catalog name or a Hub name (``hf://ORG/NAME[@REVISION]``), pulled into the cache."""
    if is_hub_name(str(name_or_path)):  # before paths: "hf://x" would read as the folder "hf:/x"
        return locate_hub(str(name_or_path))
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        for candidate in (path / WEIGHTS_FILE, path / "translator" / WEIGHTS_FILE):
            if candidate.is_file():
                return candidate
        raise ZooError(f"{str(path)!r} holds no {WEIGHTS_FILE} (nor translator/{WEIGHTS_FILE})")
    text = str(name_or_path)
    if path.suffix == ".safetensors" or os.sep in text or "/" in text:
        raise ZooError(f"no translator at {text!r}: no such file or folder")
    return pull(text)
