"""Start-up time of the commands that import no torch, against importing torch itself.

    python benchmarks/startup.py [--runs 5]

Runs each command (`zoo --version`, every `--help`, `zoo list`, `zoo data list`) as the `zoo`
console script, with the built-in plugins only and an empty $ZOO_HOME, and prints the median wall
time of each beside that of `python -c "import torch"`, and their ratio; the goal is at most 0.2.
The median CPU time (user + system) and its ratio follow: start-up runs on one core, so on a busy
machine, where wall times swing with the other work, CPU time says what the wall time would be on an
idle one. Figures, not pass/fail (tests/test_startup.py checks that torch is not imported).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pix2pix_zoo.cli import command_paths, make_app
from pix2pix_zoo.plugins import ALLOW_LIST_VARIABLE

GOAL = 0.2


def median_seconds(command: list[str], runs: int, env: dict[str, str]) -> tuple[float, float]:
    """The median wall and CPU seconds of ``runs`` runs of ``command``, after one unmeasured run."""
    wall, cpu = [], []
    for run in range(runs + 1):
        before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if run:
            wall.append(time.perf_counter() - start)
            cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="Measured runs of each command (the median is shown).")
    args = parser.parse_args()

    zoo = str(Path(sys.executable).with_name("zoo"))
    commands = [["--version"], *([*words, "--help"] for words in command_paths(make_app())),
                ["list"], ["list", "--json"], ["data", "list"]]
    with tempfile.TemporaryDirectory() as home:
        env = os.environ | {"ZOO_HOME": home, ALLOW_LIST_VARIABLE: ""}
        # With bytecode caches, as an installed package has them (torch's are): the first, unmeasured
        # run of a command writes any that are missing.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        torch_wall, torch_cpu = median_seconds([sys.executable, "-c", "import torch"], args.runs, env)
        print(f'python -c "import torch": {torch_wall:.3f} s wall, {torch_cpu:.3f} s CPU (medians of {args.runs})')
        print(f"{'command':<28} {'wall s':>7} {'ratio':>6} {'CPU s':>7} {'ratio':>6}")
        worst_wall = worst_cpu = 0.0
        for words in commands:
            wall, cpu = median_seconds([zoo, *words], args.runs, env)
            worst_wall, worst_cpu = max(worst_wall, wall / torch_wall), max(worst_cpu, cpu / torch_cpu)
            label = " ".join(["zoo", *words])
            print(f"{label:<28} {wall:>7.3f} {wall / torch_wall:>6.2f} {cpu:>7.3f} {cpu / torch_cpu:>6.2f}")
    print(f"worst ratios: {worst_wall:.2f} wall, {worst_cpu:.2f} CPU (goal: at most {GOAL})")


if __name__ == "__main__":
    main()
