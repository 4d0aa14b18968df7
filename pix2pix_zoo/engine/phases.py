"""Where a run's time goes, phase by phase, so that a user can see the fixed costs beside the steps.

Each session of a run (the first, and each ``--resume``) is timed in these phases, wall-clock:

* ``start``: from the process's start to the trainer's (interpreter, imports, the command line);
  measured from ``/proc/self/stat`` where the system has it, else left out;
* ``set_up``: checks, the data opened, networks built and placed, optimisers, a resumed checkpoint;
* ``first_step``: the first step, which waits for the loader's first batch and warms kernels up;
* ``steps``: every other step, from asking the loader for a batch to the step's losses accumulated
  (the logging of losses included); ``steady_img_per_s`` is their images per second;
* ``checkpoints``: what a checkpoint holds the loop up for (copying the tensors out); the disk's
  share runs beside the steps, on the checkpoint writer's thread, and is given as
  ``checkpoint_writes`` (its seconds overlap the others);
* ``samples``: the sample grids (the end's is drawn before the last checkpoint's write starts);
  ``evaluation``: the held-out figures; ``export``: the translator written; ``report``: report.html
  (these three beside the last checkpoint's write, which is waited for after them).

Some fixed costs are moved rather than measured: modules a run needs later but not yet are imported
on a thread beside the set-up (:func:`import_beside`).

The record goes into the run's ``config.json`` (one entry per session, under ``"timings"``) and is
said in one line at the end.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

PHASES = ("start", "set_up", "first_step", "steps", "checkpoints", "checkpoint_writes", "samples", "evaluation",
          "export", "report")


def import_beside(modules: Iterable[str]) -> None:
    """Import ``modules`` (those not imported yet), in order, on a thread of their own.

    For what a run needs only later: imported while the set-up runs torch's kernels (building and
    initialising the networks), which release the interpreter's lock and leave the other cores idle,
    they cost the run little; imported where first needed, they would hold it up there. A module
    that fails to import here is left for its first real import to report.
    """
    missing = [name for name in modules if name not in sys.modules]

    def run() -> None:
        for name in missing:
            with contextlib.suppress(Exception):
                importlib.import_module(name)

    if missing:
        threading.Thread(target=run, daemon=True, name="import beside the set-up").start()


def process_age() -> float | None:
    """Seconds since this process started, from the kernel's record; None where there is none."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return None


class PhaseClock:
    """Seconds (and how many times) spent in each phase of one session."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.images_in_steps = 0

    def add(self, phase: str, seconds: float, count: int = 1) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds
        self.counts[phase] = self.counts.get(phase, 0) + count

    @contextlib.contextmanager
    def timing(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(phase, time.perf_counter() - started)

    def record(self, **extra: Any) -> dict[str, Any]:
        """The session's timings as config.json keeps them: seconds and counts per phase, in order."""
        phases = {phase: {"seconds": round(self.seconds[phase], 3), "count": self.counts[phase]}
                  for phase in PHASES if phase in self.seconds}
        steps = self.seconds.get("steps")
        steady = self.images_in_steps / steps if steps else None
        return {**extra, "phases": phases, "steady_img_per_s": round(steady, 3) if steady else None}


def describe(record: dict[str, Any]) -> str:
    """One line for the end of a run: ``time: set-up 2.9 s, first step 2.5 s, 148 steps 85.1 s (1.74 img/s), ...``."""
    parts = []
    for phase, figures in record["phases"].items():
        name = phase.replace("_", "-") if phase == "set_up" else phase.replace("_", " ")
        count = f"{figures['count']} " if phase in ("steps", "checkpoints", "checkpoint_writes", "samples") else ""
        if count and figures["count"] == 1:
            count, name = "1 ", name.removesuffix("s")
        speed = f" ({record['steady_img_per_s']:.2f} img/s)" if phase == "steps" and record["steady_img_per_s"] else ""
        parts.append(f"{count}{name} {figures['seconds']:.1f} s{speed}")
    return "time: " + ", ".join(parts)
