"""Modules that moved: an old module name kept for plugins written against it forwards every name
to the new module, warning once per use (a DeprecationWarning naming the new home)."""

from __future__ import annotations

import warnings
from types import ModuleType
from typing import Any, Callable


def forward_to(new_home: ModuleType, old_name: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``old_name`` that hands out ``new_home``'s names."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):  # module machinery (__path__, __all__): the old module's own
            raise AttributeError(f"module {old_name!r} has no attribute {name!r}")
        value = getattr(new_home, name)  # an AttributeError for names the module never had
        warnings.warn(f"{old_name} is deprecated: import {name} from {new_home.__name__}", DeprecationWarning,
                      stacklevel=2)
        return value

    return __getattr__
