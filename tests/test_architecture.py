"""The rooms of the house: no import circles (module level or inside functions), the direction of
dependencies CONTRIBUTING's map shows, and the old module names still forwarding to the new ones."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {  # top-level package -> its folder in the repository
    "pix2pix_zoo": ROOT / "pix2pix_zoo",
    "pix2pix_zoo_nets": ROOT / "plugins" / "pix2pix_zoo_nets",
    "pix2pix_zoo_datasets": ROOT / "plugins" / "pix2pix_zoo_datasets",
    "pix2pix_zoo_objectives": ROOT / "plugins" / "pix2pix_zoo_objectives",
}
BUILTIN_PLUGINS = ("pix2pix_zoo_nets", "pix2pix_zoo_datasets", "pix2pix_zoo_objectives")
# What a plugin may build on (CONTRIBUTING, "How the pieces fit"): the contracts and the shared
# helpers, never the command line, the trainer or the translator catalog.
NOT_FOR_PLUGINS = ("pix2pix_zoo.cli", "pix2pix_zoo.engine", "pix2pix_zoo.translators", "pix2pix_zoo.translator",
                   "pix2pix_zoo.evaluation", "pix2pix_zoo.scaffold", "pix2pix_zoo.experiments")
SHARED_HELPERS = ("pix2pix_zoo.data", "pix2pix_zoo.pictures", "pix2pix_zoo.charts", "pix2pix_zoo.download",
                  "pix2pix_zoo.layers", "pix2pix_zoo.weights", "pix2pix_zoo.devices", "pix2pix_zoo.home",
                  "pix2pix_zoo.atomic", "pix2pix_zoo.spec", "pix2pix_zoo.plugins")
LIBRARY = (*NOT_FOR_PLUGINS, "pix2pix_zoo.translator_file", "pix2pix_zoo.metrics", "pix2pix_zoo.perceptual",
           "pix2pix_zoo.testing")
CORE_CONTRACTS = ("pix2pix_zoo.errors", "pix2pix_zoo.interfaces", "pix2pix_zoo.hookspecs", "pix2pix_zoo.components",
                  "pix2pix_zoo.layers")

Edge = tuple[str, str, int]  # (importer, imported, line)


def modules_of(sources: dict[str, Path]) -> dict[str, Path]:
    """Every module of the packages, by dotted name (a package by its own name)."""
    found = {}
    for package, folder in sources.items():
        for path in folder.rglob("*.py"):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def import_edges(modules: dict[str, Path]) -> list[Edge]:
    """Every import of one of ``modules`` by another, wherever it is written: at module level, in a
    function, under ``if TYPE_CHECKING``. ``from package import name`` counts as importing the
    submodule ``package.name`` where there is one, else the package. (That importing ``a.b`` runs
    ``a/__init__.py`` first is Python's doing, not an import written down, and is left out.)"""

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    edges = []
    for module, path in modules.items():
        package_parts = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [owner(alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package_parts[: len(package_parts) - node.level + 1] + ([base] if base else []))
                targets = [owner(f"{base}.{alias.name}") or owner(base) for alias in node.names]
            else:
                continue
            edges += [(module, target, node.lineno) for target in targets if target and target != module]
    return edges


def cycles(edges: list[Edge]) -> list[list[str]]:
    """The import circles: each strongly connected group of modules, as one path around it."""
    graph: dict[str, set[str]] = {}
    for importer, imported, _ in edges:
        graph.setdefault(importer, set()).add(imported)
        graph.setdefault(imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [path_around(group, graph) for group in groups]


def path_around(group: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A closed path through a strongly connected group, from its first module back to it."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        node = frontier.pop(0)
        for nxt in sorted(graph[node] & members):
            if nxt == start:
                return paths[node] + [start]
            if nxt not in paths:
                paths[nxt] = paths[node] + [nxt]
                frontier.append(nxt)
    raise AssertionError("a strongly connected group always closes")


def reachable(start: str, edges: list[Edge]) -> dict[str, list[str]]:
    """Every module ``start`` imports, directly or not, with the chain of imports that gets there."""
    graph: dict[str, set[str]] = {}
    for importer, imported, _ in edges:
        graph.setdefault(importer, set()).add(imported)
    chains = {start: [start]}
    frontier = [start]
    while frontier:
        node = frontier.pop(0)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in chains:
                chains[nxt] = chains[node] + [nxt]
                frontier.append(nxt)
    return chains


def within(module: str, packages: tuple[str, ...]) -> bool:
    """Whether ``module`` is one of ``packages`` or inside one (``a.b`` is not inside ``a.bc``)."""
    return any(module == package or module.startswith(f"{package}.") for package in packages)


@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    return import_edges(modules_of(SOURCES))


def test_the_import_reader_sees_function_level_and_relative_imports_and_finds_a_cycle(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("def late():\n    from .. import c\n")
    (package / "c.py").write_text("import typing\nif typing.TYPE_CHECKING:\n    from pkg import a\n")
    (package / "d.py").write_text("from pkg.a import thing\n")
    found = import_edges(modules_of({"pkg": package}))
    assert {(importer, imported) for importer, imported, _ in found} == {
        ("pkg.a", "pkg.sub.b"), ("pkg.sub.b", "pkg.c"), ("pkg.c", "pkg.a"), ("pkg.d", "pkg.a"),
    }
    assert cycles(found) == [["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]]


def test_no_import_circles_among_the_zoos_modules(edges):
    where = {(importer, imported): line for importer, imported, line in edges}
    described = [
        " -> ".join(cycle) + "  (" + ", ".join(f"{a} line {where[a, b]}" for a, b in zip(cycle, cycle[1:])) + ")"
        for cycle in cycles(edges)
    ]
    assert not described, "import circles:\n" + "\n".join(described)


@pytest.mark.parametrize("module", ["pix2pix_zoo.translator", "pix2pix_zoo.translator_file", "pix2pix_zoo.translators",
                                    "pix2pix_zoo.translators.entries", "pix2pix_zoo.translators.pull",
                                    "pix2pix_zoo.translators.publish", "pix2pix_zoo.pictures", "pix2pix_zoo.evaluation"])
def test_the_translator_and_its_catalog_use_nothing_of_the_trainer(edges, module):
    chains = reachable(module, edges)
    assert module in chains and len(chains) > 3  # the reader found its imports
    into_engine = {name: chain for name, chain in chains.items() if within(name, ("pix2pix_zoo.engine",))}
    assert not into_engine, f"{module} reaches the trainer: {' -> '.join(next(iter(into_engine.values())))}"


@pytest.mark.parametrize("module", ["pix2pix_zoo.translator_file", "pix2pix_zoo.translators"])
def test_the_catalog_and_the_file_format_do_not_need_the_translator_runtime(edges, module):
    chain = reachable(module, edges).get("pix2pix_zoo.translator")
    assert chain is None, " -> ".join(chain)


def test_the_plugin_host_knows_nothing_above_the_component_registry(edges):
    chains = reachable("pix2pix_zoo.plugins", edges)
    assert set(chains) == {"pix2pix_zoo.plugins", "pix2pix_zoo.hookspecs", "pix2pix_zoo.errors", "pix2pix_zoo.components"}


def test_the_shared_helpers_use_nothing_of_the_library(edges):
    helpers = [m for m in modules_of(SOURCES) if within(m, SHARED_HELPERS)]
    assert len(helpers) > len(SHARED_HELPERS)  # data/ counts with its modules
    for helper in helpers:
        chains = reachable(helper, edges)
        beyond = {name: chain for name, chain in chains.items() if within(name, LIBRARY)}
        assert not beyond, f"{helper} reaches {' -> '.join(next(iter(beyond.values())))}"


@pytest.mark.parametrize("contract", CORE_CONTRACTS)
def test_the_core_contracts_import_only_each_other(edges, contract):
    outside = set(reachable(contract, edges)) - {contract, "pix2pix_zoo", *CORE_CONTRACTS}
    assert not outside, f"{contract} imports {sorted(outside)}"


def test_nothing_but_the_command_line_imports_it(edges):
    into_cli = [(a, b, line) for a, b, line in edges
                if within(b, ("pix2pix_zoo.cli",)) and not within(a, ("pix2pix_zoo.cli", "pix2pix_zoo.__main__"))]
    assert not into_cli


@pytest.mark.parametrize("plugin", BUILTIN_PLUGINS)
def test_the_builtin_plugins_build_on_the_core_only(edges, plugin):
    chains = reachable(plugin, edges)
    assert any(name.startswith("pix2pix_zoo.") for name in chains)
    beyond = {name: chain for name, chain in chains.items() if within(name, NOT_FOR_PLUGINS)}
    assert not beyond, f"{plugin} reaches {' -> '.join(next(iter(beyond.values())))}"


@pytest.mark.parametrize(("old", "new", "name"), [
    ("pix2pix_zoo.registry", "pix2pix_zoo.components", "Width"),
    ("pix2pix_zoo.registry", "pix2pix_zoo.components", "did_you_mean"),
    ("pix2pix_zoo.catalog", "pix2pix_zoo.translators", "TranslatorEntry"),
    ("pix2pix_zoo.catalog", "pix2pix_zoo.translators", "find_translator"),
    ("pix2pix_zoo.data.download", "pix2pix_zoo.download", "staged_directory"),
])
def test_a_moved_module_still_answers_under_its_old_name_with_a_warning(old, new, name):
    old_module, new_module = importlib.import_module(old), importlib.import_module(new)
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated: import {name} from {new}"):
        assert getattr(old_module, name) is getattr(new_module, name)
    with pytest.raises(AttributeError):
        old_module.no_such_name  # noqa: B018
    assert not hasattr(old_module, "__path__")  # still a module, not the package it forwards to


def test_a_plugin_written_against_the_old_names_still_registers(register_plugin, tmp_path, monkeypatch):
    (tmp_path / "old_style_plugin.py").write_text(
        "from typing import Annotated\n"
        "from torch import nn\n"
        "from pix2pix_zoo import hookimpl\n"
        "from pix2pix_zoo.registry import Bounds\n"
        "def tiny(in_channels, out_channels, *, depth: Annotated[int, Bounds(1, 4)] = 1):\n"
        "    net = nn.Conv2d(in_channels, out_channels, 1)\n"
        "    net.size_multiple = 1\n"
        "    return net\n"
        "@hookimpl\n"
        "def register_generators(register):\n"
        "    register('old_style_tiny', tiny)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(DeprecationWarning, match="pix2pix_zoo.registry is deprecated"):
        module = importlib.import_module("old_style_plugin")
    register_plugin(module, "old_style")
    from pix2pix_zoo.spec import resolve

    assert str(resolve("old_style_tiny(depth=3)+l1")) == "old_style_tiny(depth=3)+l1"
    sys.modules.pop("old_style_plugin", None)


def test_contributings_map_names_every_module_of_the_package():
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    section = text[text.index("## How the pieces fit"):text.index("## Writing a plugin")]
    package = SOURCES["pix2pix_zoo"]
    names = [f"{path.name}/" if path.is_dir() else path.name for path in package.iterdir()
             if (path.suffix == ".py" and path.name not in ("__init__.py", "__main__.py"))
             or (path.is_dir() and (path / "__init__.py").is_file() and path.name != "plugin_template")]
    names += [path.name for path in (package / "engine").glob("*.py") if path.name != "__init__.py"]
    for room in ("translators", "experiments"):
        names += [path.name for path in (package / room).glob("*.py") if path.name != "__init__.py"]
    assert len(names) > 30
    missing = [name for name in names if name not in section]
    assert not missing, f"CONTRIBUTING's map does not place {missing}"
