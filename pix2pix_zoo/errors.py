"""Errors the zoo expects and reports as one readable line (the CLI exits 1 on these)."""


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its type's name if it has none): what a one-line report quotes."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


class ZooError(Exception):
    """Base class of every error the zoo reports to users without a traceback."""


class SpecError(ZooError, ValueError):
    """A spec string, a component name or an option is invalid."""


class PluginError(ZooError):
    """A plugin is malformed: a misspelled hook, a bad registration, a duplicate name."""


class DataError(ZooError):
    """A dataset is missing, empty, malformed, or cannot be downloaded or verified."""


class BadImageError(DataError):
    """One image file cannot be read or decoded; ``path`` names it (``--skip-bad`` skips these)."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"cannot read image {str(path)!r}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self):  # rebuilt from its two parts when it crosses from a loader worker
        return type(self), (self.path, self.reason)


class CatalogError(ZooError):
    """A translator catalog entry is invalid or unknown, or a pulled translator cannot be verified or converted."""
