"""``zoo plugins new NAME``: write a working plugin package to start from.

The package is a distribution ``pix2pix-zoo-NAME`` with the module ``pix2pix_zoo_NAME``: an entry
point in the ``pix2pix_zoo`` group, a small component of the chosen kind registered as ``NAME`` (a
generator, a discriminator, an objective, a dataset of your photos or an image codec), tests that
run the conformance checks of :mod:`pix2pix_zoo.testing` over it and use it as the engine does, and
a README. It installs and passes its tests as written; the author then replaces the component's
insides with their own.
"""

from __future__ import annotations

import ast
import functools
import keyword
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from pix2pix_zoo import __version__
from pix2pix_zoo.components import NAME_PATTERN
from pix2pix_zoo.errors import ZooError
from pix2pix_zoo.plugins import get_registry

TEMPLATE_PACKAGE = "pix2pix_zoo.plugin_template"
# Template file -> where it goes in the new package ("module" is the plugin's import name).
TEMPLATE_FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "module/{kind}.py.tmpl": "{module}/__init__.py",
    "tests/{kind}.py.tmpl": "tests/test_{module}.py",
}
QUICK = "--data synthfacades --data-opt size=128 --crop-size 128 --load-size 143 --max-steps 200"


@dataclass(frozen=True)
class Scaffold:
    """What ``zoo plugins new --kind KIND`` writes for one kind of component."""

    class_suffix: str
    summary: str
    usage: str
    """The README's usage lines: minutes on a CPU, not the paper's 200 epochs."""


SCAFFOLDS = {
    "generator": Scaffold("Generator", "a small fully convolutional generator (replace with your network)",
                          f'zoo info "${{name}}(ngf=16)+patch70+l1cgan"\nzoo train "${{name}}(ngf=16)+patch70(ndf=16)+l1cgan" {QUICK}'),
    "discriminator": Scaffold("Discriminator", "a PatchGAN-style discriminator (replace with your network)",
                              f'zoo info "unet_128+${{name}}+l1cgan"\nzoo train "unet_128(ngf=16)+${{name}}(ndf=16)+l1cgan" {QUICK}'),
    "objective": Scaffold("Objective", "a conditional least-squares GAN plus L1 (replace with your losses)",
                          f'zoo info "unet_128+patch70+${{name}}"\nzoo train "unet_128(ngf=16)+patch70(ndf=16)+${{name}}" {QUICK}'),
    "dataset": Scaffold("Pairs", "your photos with a hole to fill: --data ${name}:PATH (replace with your task)",
                        'zoo data info ${name}\nzoo train "unet_128(ngf=16)+patch70(ndf=16)+l1cgan" --data ${name}:PHOTOS '
                        "--crop-size 128 --load-size 143 --max-steps 200"),
    "codec": Scaffold("Codec", "RGB pictures <-> a translator's tensors (replace with your data's codec)",
                      'name it in your dataset\'s DatasetInfo(codec="${name}"): sample grids and zoo translate use it'),
}
KINDS = tuple(SCAFFOLDS)


def check_name_is_free(name: str) -> None:
    """Refuse a name the written module could not define (a Python keyword, a name the template's
    code itself uses) or that an installed plugin's component (or alias) already has: the new
    plugin would be disabled as the later of two plugins registering one name."""
    if keyword.iskeyword(name) or name in _template_names():
        raise ZooError(
            f"plugin name {name!r} is a Python keyword or a name the generated module uses itself; choose another"
        )
    registry = get_registry()
    if name in registry:  # a name or an alias
        component = registry.get(name)
        raise ZooError(
            f"the name {name!r} is taken by the {component.kind} {component.name!r} of plugin "
            f"{component.plugin!r}; choose another (see zoo components)"
        )


@functools.cache
def _template_names() -> frozenset[str]:
    """The names the generated modules' own code uses (imports, classes, functions), of every kind."""
    names: set[str] = set()
    for kind in KINDS:
        source = resources.files(TEMPLATE_PACKAGE).joinpath(f"module/{kind}.py.tmpl").read_text(encoding="utf-8")
        tree = ast.parse(Template(source).safe_substitute(name="placeholder_name", class_name="PlaceholderClass"))
        names |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        names |= {alias.asname or alias.name for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom | ast.Import) for alias in node.names}
        names |= {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.ClassDef)}
    return frozenset(names - {"placeholder_name", "PlaceholderClass"})


def new_plugin(name: str, output: Path | None = None, kind: str = "generator") -> Path:
    """Write the plugin package for a ``kind`` (generator, discriminator, objective, dataset, codec)
    called ``name`` into ``output`` (default ``./pix2pix-zoo-NAME``), which must not exist yet;
    return the folder."""
    if kind not in SCAFFOLDS:
        raise ZooError(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if not NAME_PATTERN.fullmatch(name):
        raise ZooError(f"plugin name {name!r} must be lower case letters, digits and _ (starting with a letter)")
    check_name_is_free(name)
    distribution = f"pix2pix-zoo-{name.replace('_', '-')}"
    target = Path(output) if output is not None else Path(distribution)
    if target.exists():
        raise ZooError(f"{target} already exists; choose another --output or remove it")
    scaffold = SCAFFOLDS[kind]
    fields = {
        "name": name,
        "kind": kind,
        "module": f"pix2pix_zoo_{name}",
        "distribution": distribution,
        "class_name": "".join(part.capitalize() for part in name.split("_")) + scaffold.class_suffix,
        "summary": Template(scaffold.summary).substitute(name=name),
        "usage": Template(scaffold.usage).substitute(name=name),
        # The release that wrote it: the plugin may use anything this version offers.
        "zoo_version": release.group(0) if (release := re.match(r"\d+(\.\d+)*", __version__)) else "0",
    }
    template = resources.files(TEMPLATE_PACKAGE)
    written = {}
    for source, destination in TEMPLATE_FILES.items():
        text = Template(template.joinpath(source.format(kind=kind)).read_text(encoding="utf-8")).substitute(fields)
        written[target / destination.format(**fields)] = text
    for path, text in written.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target
