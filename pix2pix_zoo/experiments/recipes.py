"""Recipes: sweep files by name (``zoo sweep --recipe NAME``), shipped with the zoo or added by plugins.

The shipped recipes (``experiments/recipes/*.toml``) are the paper's three ablations, with its data
and schedule; options typed on the command line override them for every run (``--data``,
``--max-steps``, ...). A plugin adds its own through the ``register_recipes`` hook:
``register(name, text, summary="")`` with a sweep file's TOML text (see
:mod:`~pix2pix_zoo.experiments.sweep`), whose form is checked at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from pix2pix_zoo.components import did_you_mean
from pix2pix_zoo.errors import PluginError, SpecError, ZooError, first_line
from pix2pix_zoo.experiments.sweep import read_sweep_text
from pix2pix_zoo.plugins import get_host

RECIPE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
SHIPPED_FOLDER = "recipes"  # beside this module, in the package


@dataclass(frozen=True)
class Recipe:
    """A named sweep file: its TOML text, one line on what it runs, and where it came from."""

    name: str
    text: str
    summary: str
    origin: str  # "shipped" or the plugin's name
    runs: int


def _checked(name: object, text: object, summary: object, origin: str) -> Recipe:
    where = f"recipe {name!r} ({origin})"
    if not isinstance(name, str) or not RECIPE_NAME.fullmatch(name):
        raise SpecError(f"{where}: a recipe name is lower-case letters, digits, '_' and '-'")
    if not isinstance(text, str):
        raise SpecError(f"{where}: give the sweep file's TOML text, not {type(text).__name__}")
    data = read_sweep_text(text, where)
    summary = summary or data.get("summary", "")
    if not isinstance(summary, str):
        raise SpecError(f"{where}: summary must be a string")
    return Recipe(name, text, summary, origin, len(data["run"]))


def shipped_recipes() -> list[Recipe]:
    folder = resources.files(__package__).joinpath(SHIPPED_FOLDER)
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".toml")), key=lambda f: f.name)
    return [_checked(f.name[: -len(".toml")], f.read_text(encoding="utf-8"), "", "shipped") for f in files]


def plugin_recipes() -> list[Recipe]:
    """The recipes plugins add through ``register_recipes``, checked (a malformed one is the
    plugin's error, reported as such)."""
    recipes: list[Recipe] = []
    host = get_host()

    def registrar(plugin_name: str):
        def register(name: str, text: str, summary: str = "") -> None:
            try:
                recipes.append(_checked(name, text, summary, plugin_name))
            except ZooError as error:
                raise PluginError(first_line(error)) from None
            host.note_added(plugin_name, "recipe", name)

        return register

    host.call_each("register_recipes", lambda plugin_name: {"register": registrar(plugin_name)})
    return recipes


def list_recipes() -> dict[str, Recipe]:
    """Every recipe by name: shipped, then plugins'; a name defined twice is an error."""
    found: dict[str, Recipe] = {}
    for recipe in [*shipped_recipes(), *plugin_recipes()]:
        if recipe.name in found:
            raise ZooError(f"recipe {recipe.name!r} is defined twice: {found[recipe.name].origin} and {recipe.origin}")
        found[recipe.name] = recipe
    return found


def find_recipe(name: str) -> Recipe:
    """The recipe called ``name``; a SpecError naming close matches otherwise."""
    recipes = list_recipes()
    if name not in recipes:
        raise SpecError(f"unknown recipe {name!r}; {did_you_mean(name, recipes)}")
    return recipes[name]
