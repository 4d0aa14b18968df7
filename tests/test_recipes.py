"""``zoo sweep --recipe``: the paper's three ablations as shipped sweep files, overridable from the
command line, and recipes that plugins add through ``register_recipes``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import run_main, run_zoo

from pix2pix_zoo import hookimpl
from pix2pix_zoo.errors import PluginError, ZooError
from pix2pix_zoo.experiments.recipes import find_recipe, list_recipes

README = Path(__file__).resolve().parents[1] / "README.md"

PAPER = {
    "paper-objectives": ["unet_256+l1", "unet_256+patch70+gan", "unet_256+patch70+cgan", "unet_256+patch70+l1gan",
                         "unet_256+patch70+l1cgan"],
    "paper-generators": ["encdec_256+l1", "encdec_256+patch70+l1cgan", "unet_256+l1", "unet_256+patch70+l1cgan"],
    "paper-discriminators": ["unet_256+pixel+l1cgan", "unet_256+patch16+l1cgan", "unet_256+patch70+l1cgan",
                             "unet_256+image+l1cgan"],
}
TINY_RECIPE = """
summary = "one tiny run"
[defaults]
data = "synthfacades"
data_options = { size = 32, count = 24 }
load_size = 36
crop_size = 32
batch_size = 2
workers = 0
device = "cpu"
epochs = 1
epochs_decay = 0
[[run]]
spec = "resnet_6blocks(ngf=4,norm=batch)+patch16(ndf=4)+l1cgan"
name = "tiny"
"""


@pytest.mark.parametrize("recipe", sorted(PAPER))
def test_the_paper_ablations_run_the_papers_specs_with_its_data_and_schedule(recipe):
    result = run_zoo("sweep", "--recipe", recipe, "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["sweep"] == recipe
    assert [run["spec"] for run in plan["runs"]] == PAPER[recipe]
    for run in plan["runs"]:
        config = run["config"]
        assert (config["data"], config["direction"], config["epochs"], config["epochs_decay"]) == ("cityscapes", "BtoA", 100, 100)
        assert (config["batch_size"], config["load_size"], config["crop_size"], config["lr"]) == (1, 286, 256, 0.0002)


def test_options_typed_on_the_command_line_override_a_recipe_for_every_run():
    result = run_zoo("sweep", "--recipe", "paper-generators", "--data", "synthfacades", "--max-steps", "3",
                     "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    configs = [run["config"] for run in json.loads(result.stdout)["runs"]]
    assert {(c["data"], c["max_steps"], c["epochs"]) for c in configs} == {("synthfacades", 3, 100)}
    listed = run_zoo("sweep", "--list-recipes", "--json")
    assert {r["name"]: r["runs"] for r in json.loads(listed.stdout)} == {
        **{name: len(specs) for name, specs in PAPER.items()}, "paper-objectives-small": 5}


def test_the_small_objective_ablation_is_table_1_at_the_readme_first_runs_size():
    result = run_zoo("sweep", "--recipe", "paper-objectives-small", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    runs = json.loads(result.stdout)["runs"]
    # The paper's five objectives, in its order, on the README's first run's networks.
    objectives = [spec.rsplit("+", 1)[1] for spec in PAPER["paper-objectives"]]
    assert [run["spec"] for run in runs] == ["unet_128(ngf=32)+l1", *(f"unet_128(ngf=32)+patch70(ndf=32)+{o}"
                                                                     for o in objectives[1:])]
    first_run = re.search(r"^zoo train (.*)$", README.read_text(encoding="utf-8"), re.M).group(1)
    assert '"unet_128(ngf=32)+patch70(ndf=32)+l1cgan"' in first_run
    for run in runs:
        config = run["config"]
        assert (config["data"], config["data_options"]) == ("synthfacades", {"size": 128})
        settings = (config["load_size"], config["crop_size"], config["batch_size"], config["epochs"], config["epochs_decay"])
        assert " ".join(f"{flag} {value}" for flag, value in zip(
            ("--load-size", "--crop-size", "--batch-size", "--epochs", "--epochs-decay"), settings)) in first_run


def test_an_unknown_recipe_names_the_close_ones(capsys):
    code, _, err = run_main(capsys, "sweep", "--recipe", "paper-objective", "--dry-run")
    assert code == 1 and "unknown recipe 'paper-objective'; did you mean paper-objectives" in err
    code, _, err = run_main(capsys, "sweep", "unet+l1", "--recipe", "paper-objectives")
    assert code == 1 and "give one of a GRID" in err


def test_a_plugins_recipe_is_listed_and_runs(register_plugin, capsys, tmp_path):
    class Plugin:
        @hookimpl
        def register_recipes(self, register):
            register("tiny-study", TINY_RECIPE)

    register_plugin(Plugin(), "studies")
    recipe = find_recipe("tiny-study")
    assert (recipe.origin, recipe.summary, recipe.runs) == ("studies", "one tiny run", 1)
    code, out, err = run_main(capsys, "sweep", "--recipe", "tiny-study", "--max-steps", "2", "--runs",
                              str(tmp_path), "--no-progress", "--json")
    assert code == 0, err
    assert [o["outcome"] for o in json.loads(out)] == ["trained"]
    assert (tmp_path / "tiny-study" / "tiny" / "translator" / "model.safetensors").is_file()
    code, out, _ = run_main(capsys, "plugins", "--json")
    (record,) = [r for r in json.loads(out) if r["name"] == "studies"]
    assert {"kind": "recipe", "name": "tiny-study"} in record["registered"]


@pytest.mark.parametrize(("name", "text", "message"), [
    ("Bad Name", TINY_RECIPE, "a recipe name is lower-case"),
    ("no-runs", "[defaults]\nepochs = 1\n", "give the runs as \\[\\[run\\]\\] tables"),
    ("not-toml", "[[run]\n", "is not a valid sweep file"),
])
def test_a_malformed_recipe_is_the_plugins_error(register_plugin, name, text, message):
    class Plugin:
        @hookimpl
        def register_recipes(self, register):
            register(name, text)

    register_plugin(Plugin(), "careless")
    with pytest.raises(PluginError, match=message):
        list_recipes()


def test_a_recipe_defined_twice_is_refused(register_plugin):
    class Plugin:
        @hookimpl
        def register_recipes(self, register):
            register("paper-objectives", TINY_RECIPE)

    register_plugin(Plugin(), "copycat")
    with pytest.raises(ZooError, match="recipe 'paper-objectives' is defined twice: shipped and copycat"):
        list_recipes()


def test_the_readme_reproduces_the_paper_with_the_shipped_recipes():
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Reproducing the paper"):text.index("## Datasets")]
    named = re.findall(r"zoo sweep --recipe (\S+)", section)
    assert named[:3] == sorted(PAPER, key=["paper-objectives", "paper-generators", "paper-discriminators"].index)
    assert set(named) == set(list_recipes()) and len(named) == len(set(named))
