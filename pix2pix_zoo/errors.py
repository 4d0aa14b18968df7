"""Errors the zoo expects and reports as one readable line (the CLI exits 1 on these)."""


class ZooError(Exception):
    """Base class of every error the zoo reports to users without a traceback."""


class SpecError(ZooError, ValueError):
    """A spec string, a component name or an option is invalid."""


class PluginError(ZooError):
    """A plugin is malformed: a misspelled hook, a bad registration, a duplicate name."""
