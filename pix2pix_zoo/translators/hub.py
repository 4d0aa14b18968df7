"""Hub names: ``hf://ORG/NAME[@REVISION]``, the ``model.safetensors`` of a Hugging Face Hub model
repository, pulled with huggingface_hub (the ``hub`` extra) wherever a translator is named.

:func:`pull_hub` downloads the file (through huggingface_hub's own cache, which honours
``HF_ENDPOINT``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE`` and the login), checks it like any translator
file and keeps it in ``$ZOO_HOME/translators/_hub/ORG/NAME/REVISION/``; the sha256 of the first
pull is recorded beside it and every later pull must match it, so a repository whose file changed
is refused until the revision is pinned or the record deleted. :func:`locate_hub` uses the local
copy once its hash is checked, without the network.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from pix2pix_zoo import __version__
from pix2pix_zoo.atomic import sigterm_as_interrupt, temporary_path, write_json_atomic
from pix2pix_zoo.download import sha256_of
from pix2pix_zoo.errors import CatalogError, ZooError, first_line
from pix2pix_zoo.home import translators_dir
from pix2pix_zoo.translator_file import WEIGHTS_FILE, check_translator
from pix2pix_zoo.translators.entries import SOURCE_RECORD, check_recorded, recorded_sha256

HUB_PREFIX = "hf://"
# Catalog names start with a letter or a digit, so no catalog entry's folder is this one.
HUB_FOLDER = "_hub"
DEFAULT_REVISION = "main"
# The Hub's rules for an organisation or repository name (ASCII): word characters, '-' and '.',
# neither first nor last, at most 96; '--' and '..' are refused apart.
_REPO_PART = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?")
# A branch, tag or commit: git's ref characters, '/'-separated parts that start with no '.'.
_REVISION = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*")
_MAX_REVISION = 200
_COMMIT = re.compile(r"[0-9a-f]{40}")
_FORM = "hf://ORG/NAME or hf://ORG/NAME@REVISION"


@dataclass(frozen=True)
class HubName:
    """A parsed ``hf://ORG/NAME[@REVISION]``: the repository and the revision (``main`` when unpinned)."""

    repo: str
    revision: str

    def __str__(self) -> str:
        return f"{HUB_PREFIX}{self.repo}@{self.revision}"

    @property
    def directory(self) -> Path:
        """``$ZOO_HOME/translators/_hub/ORG/NAME/REVISION``, the revision's ``/`` percent-encoded (a
        name holds no ``%``, so no two names share a folder)."""
        org, name = self.repo.split("/")
        return translators_dir() / HUB_FOLDER / org / name / quote(self.revision, safe="")

    @property
    def weights_path(self) -> Path:
        return self.directory / WEIGHTS_FILE


def is_hub_name(text: str) -> bool:
    """Whether ``text`` names a translator on the Hub (starts with ``hf://``)."""
    return text.startswith(HUB_PREFIX)


def parse_hub_name(text: str) -> HubName:
    """``hf://ORG/NAME[@REVISION]`` checked against the Hub's characters (nothing that could leave
    its folder: no ``..``, empty parts, spaces or ``%``-escapes); a CatalogError saying what is wrong."""

    def bad(problem: str) -> CatalogError:
        return CatalogError(f"bad Hub name {text!r}: {problem} (write {_FORM})")

    if not is_hub_name(text):
        raise bad("it does not start with hf://")
    repo, at, revision = text[len(HUB_PREFIX):].partition("@")
    parts = repo.split("/")
    if len(parts) != 2 or not all(parts):
        raise bad("the repository must be ORG/NAME, two non-empty parts")
    for part in parts:
        if not _REPO_PART.fullmatch(part) or "--" in part or ".." in part:
            raise bad(f"{part!r} is not an organisation or repository name: letters, digits, '_', '-', '.' "
                      "(not first or last, not doubled), at most 96")
    if at and not revision:
        raise bad("the revision after '@' is empty")
    if at and (len(revision) > _MAX_REVISION or not _REVISION.fullmatch(revision) or ".." in revision
               or revision.endswith(".lock")):
        raise bad(f"{revision!r} is not a branch, tag or commit: letters, digits, '_', '-', '.', '/'-separated "
                  f"parts that do not start with '.', at most {_MAX_REVISION}")
    return HubName(repo, revision if at else DEFAULT_REVISION)


def locate_hub(text: str) -> Path:
    """The local ``model.safetensors`` of a Hub name: the pulled copy once its sha256 matches the
    record (no network), else pulled first (see :func:`pull_hub`)."""
    name = parse_hub_name(text)
    recorded = recorded_sha256(name.directory)
    if recorded is None or not name.weights_path.is_file():
        return pull_hub(text)
    if sha256_of(name.weights_path) != recorded:
        raise CatalogError(f"{name.weights_path} no longer has the sha256 recorded when {name} was pulled "
                           f"({recorded}); pull it again: zoo pull {text}")
    return name.weights_path


def pull_hub(text: str) -> Path:
    """Download a Hub name's ``model.safetensors`` with huggingface_hub, check it and keep it in
    ``$ZOO_HOME/translators/_hub/...``; return its path.

    The first pull records the file's sha256 (and the commit it came from); every later pull must
    find the same file, else it is refused and the copy already kept stays as it was."""
    name = parse_hub_name(text)
    downloaded = _download(name)
    name.directory.mkdir(parents=True, exist_ok=True)
    # A name of this call's own: a concurrent pull of the same name copies beside it.
    source = temporary_path(name.weights_path, "download")
    with sigterm_as_interrupt():  # stopped while copying or checking, the copy is deleted too
        try:
            shutil.copyfile(downloaded, source)
            first_pull = recorded_sha256(name.directory) is None
            sha256 = check_recorded(source, name.directory, lambda recorded, actual: (
                f"{name} changed since it was first pulled (sha256 {recorded}, now {actual}): refused; pin the "
                f"revision you trust (hf://{name.repo}@{_first_commit(name)}) or, if the repository changed on "
                f"purpose, delete {name.directory / SOURCE_RECORD} and pull again"
            ))
            try:
                check_translator(source, str(name))
            except ZooError as error:  # reported as the catalog's error, like every other pull failure
                raise CatalogError(str(error)) from None
            source.replace(name.weights_path)
            if first_pull:
                commit = downloaded.parent.name  # huggingface_hub keeps a file under snapshots/COMMIT/
                record = {"repo": name.repo, "revision": name.revision, "sha256": sha256,
                          **({"commit": commit} if _COMMIT.fullmatch(commit) else {})}
                write_json_atomic(name.directory / SOURCE_RECORD, record, durable=True)
        finally:
            source.unlink(missing_ok=True)
    return name.weights_path


def _first_commit(name: HubName) -> str:
    """The commit the first pull came from, as recorded; ``COMMIT`` where none was."""
    try:
        commit = json.loads((name.directory / SOURCE_RECORD).read_text(encoding="utf-8"))["commit"]
    except (OSError, ValueError, KeyError, TypeError):
        return "COMMIT"
    return commit if isinstance(commit, str) and _COMMIT.fullmatch(commit) else "COMMIT"


def _download(name: HubName) -> Path:
    """The file in huggingface_hub's cache, downloaded if the Hub has a newer one; a CatalogError in
    one line for what the Hub or the network refused."""
    try:
        from huggingface_hub import hf_hub_download  # optional: only hf:// names need it
        from huggingface_hub.utils import (
            EntryNotFoundError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError:
        raise CatalogError('hf:// names need huggingface_hub: pip install "pix2pix-zoo[hub]"') from None
    try:
        path = hf_hub_download(name.repo, WEIGHTS_FILE, revision=name.revision,
                               library_name="pix2pix-zoo", library_version=__version__)
    except RepositoryNotFoundError:  # the Hub says so for a private repository without a login too
        raise CatalogError(f"no Hub repository {name.repo!r} (if it is private: hf auth login)") from None
    except RevisionNotFoundError:
        raise CatalogError(f"hf://{name.repo} has no revision {name.revision!r}") from None
    except LocalEntryNotFoundError:  # before EntryNotFoundError: it is one
        raise CatalogError(f"cannot pull {name}: the Hub is not reachable (or HF_HUB_OFFLINE is set) and "
                           "huggingface_hub's cache does not hold it") from None
    except EntryNotFoundError:
        raise CatalogError(f"{name} has no {WEIGHTS_FILE}: it is not a pix2pix-zoo translator") from None
    except (HfHubHTTPError, OSError, ValueError) as error:
        raise CatalogError(f"cannot pull {name}: {first_line(error)}") from None
    return Path(path)
