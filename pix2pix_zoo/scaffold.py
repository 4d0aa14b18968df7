"""``zoo plugins new NAME``: write a working plugin package to start from.

The package is a distribution ``pix2pix-zoo-NAME`` with the module ``pix2pix_zoo_NAME``: an entry
point in the ``pix2pix_zoo`` group, a small generator registered as ``NAME``, tests that run the
conformance checks of :mod:`pix2pix_zoo.testing` over it, and a README. It installs and passes its
tests as written; the author then replaces the network with their own.
"""

from __future__ import annotations

import ast
import functools
import keyword
import re
from importlib import resources
from pathlib import Path
from string import Template

from pix2pix_zoo import __version__
from pix2pix_zoo.errors import ZooError
from pix2pix_zoo.plugins import get_registry
from pix2pix_zoo.registry import NAME_PATTERN

TEMPLATE_PACKAGE = "pix2pix_zoo.plugin_template"
# Template file -> where it goes in the new package ("module" is the plugin's import name).
TEMPLATE_FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "module/__init__.py.tmpl": "{module}/__init__.py",
    "tests/test_plugin.py.tmpl": "tests/test_{module}.py",
}


def check_name_is_free(name: str) -> None:
    """Refuse a name the written module could not define (a Python keyword, a name the template's
    code itself uses) or that an installed plugin's component (or alias) already has: the new
    plugin would be disabled as the later of two plugins registering one name."""
    if keyword.iskeyword(name) or name in _template_names():
        raise ZooError(
            f"plugin name {name!r} is a Python keyword or a name the generated module uses itself; choose another"
        )
    taken = get_registry().components()
    for component in taken:
        if name == component.name or name in component.aliases:
            raise ZooError(
                f"the name {name!r} is taken by the {component.kind} {component.name!r} of plugin "
                f"{component.plugin!r}; choose another (see zoo components)"
            )


@functools.cache
def _template_names() -> frozenset[str]:
    """The names the generated module's own code uses (imports, classes, functions)."""
    source = resources.files(TEMPLATE_PACKAGE).joinpath("module/__init__.py.tmpl").read_text(encoding="utf-8")
    tree = ast.parse(Template(source).safe_substitute(name="placeholder_name", class_name="PlaceholderClass"))
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    names |= {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom | ast.Import)
              for alias in node.names}
    names |= {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.ClassDef)}
    return frozenset(names - {"placeholder_name", "PlaceholderClass"})


def new_plugin(name: str, output: Path | None = None) -> Path:
    """Write the plugin package for a generator called ``name`` into ``output`` (default
    ``./pix2pix-zoo-NAME``), which must not exist yet; return the folder."""
    if not NAME_PATTERN.fullmatch(name):
        raise ZooError(f"plugin name {name!r} must be lower case letters, digits and _ (starting with a letter)")
    check_name_is_free(name)
    distribution = f"pix2pix-zoo-{name.replace('_', '-')}"
    target = Path(output) if output is not None else Path(distribution)
    if target.exists():
        raise ZooError(f"{target} already exists; choose another --output or remove it")
    fields = {
        "name": name,
        "module": f"pix2pix_zoo_{name}",
        "distribution": distribution,
        "class_name": "".join(part.capitalize() for part in name.split("_")) + "Generator",
        "summary": "a small fully convolutional generator (replace with your network)",
        # The release that wrote it: the plugin may use anything this version offers.
        "zoo_version": release.group(0) if (release := re.match(r"\d+(\.\d+)*", __version__)) else "0",
    }
    template = resources.files(TEMPLATE_PACKAGE)
    written = {}
    for source, destination in TEMPLATE_FILES.items():
        text = Template(template.joinpath(source).read_text(encoding="utf-8")).substitute(fields)
        written[target / destination.format(**fields)] = text
    for path, text in written.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target
