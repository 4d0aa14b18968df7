"""Helpers for tests that drive the real ``zoo`` console script in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from importlib import metadata
from pathlib import Path

from pix2pix_zoo.cli import main
from pix2pix_zoo.plugins import ENTRY_POINT_GROUP


def zoo_executable() -> str:
    """The ``zoo`` console script installed beside this interpreter."""
    candidate = Path(sys.executable).with_name("zoo")
    return str(candidate) if candidate.exists() else shutil.which("zoo") or "zoo"


def run_env(**extra: str) -> dict[str, str]:
    """Environment for CLI subprocesses: no colours, fixed width, no debug, this test's allow-list."""
    env = {k: v for k, v in os.environ.items() if k != "ZOO_DEBUG"}
    env.update({"NO_COLOR": "1", "COLUMNS": "100", "TERMINAL_WIDTH": "100", "PYTHONIOENCODING": "utf-8"})
    env.update(extra)
    return env


def run_zoo(*args: str, cwd: Path | str | None = None, **env: str) -> subprocess.CompletedProcess:
    """Run the real ``zoo`` console script; returns the completed process (text output)."""
    return subprocess.run(
        [zoo_executable(), *args], capture_output=True, text=True, env=run_env(**env), cwd=cwd, timeout=300
    )


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``main`` in this process; return (exit code, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code if isinstance(exit_info.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def shared_venv(env_dir: Path, *, with_this_install: bool) -> Path:
    """A fresh virtual environment that sees this environment's packages; return its python.

    ``with_this_install`` False shares only the dependencies (torch, typer, ...): this environment's
    site-packages is put on the path but its ``.pth`` files, and so the editable install of the
    project, are not processed. True processes them too (``site.addsitedir``), so the project is
    importable as it is installed here, and what the new environment installs adds to it.
    """
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    shared = _without_other_plugins(Path(sysconfig.get_paths()["purelib"]), env_dir / "shared-site-packages")
    line = f"import site; site.addsitedir({str(shared)!r})" if with_this_install else str(shared)
    (Path(site) / "shared_environment.pth").write_text(line + "\n")
    # Build with this environment's setuptools, not the older one venv bundles (which cannot make a
    # wheel without the separate `wheel` package, absent from a fresh install of the project).
    subprocess.run([str(python), "-m", "pip", "uninstall", "--yes", "--quiet", "setuptools"], check=True,
                   capture_output=True)
    return python


def _without_other_plugins(site_packages: Path, view: Path) -> Path:
    """A folder of links to everything in ``site_packages`` except the zoo plugins of other
    distributions installed there (a contributor's editable install of the example, say), so that
    an environment sharing it holds exactly the plugins its test installs."""
    hidden = set()
    for distribution in metadata.distributions(path=[str(site_packages)]):
        is_plugin = any(point.group == ENTRY_POINT_GROUP for point in distribution.entry_points)
        if is_plugin and distribution.metadata["Name"] != "pix2pix-zoo":
            hidden |= {Path(str(file)).parts[0] for file in distribution.files or ()}
    view.mkdir()
    for entry in site_packages.iterdir():
        if entry.name not in hidden:
            (view / entry.name).symlink_to(entry)
    return view


def pip(python: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run pip offline in another environment: no index, no dependencies, no build isolation."""
    return subprocess.run(
        [str(python), "-m", "pip", *args, *(["--no-deps", "--no-index", "--no-build-isolation"] if args[0] == "install" else []),
         "--quiet"],
        capture_output=True, text=True, cwd=cwd, timeout=600,
    )


def assert_one_line(code: int, err: str, *fragments: str) -> None:
    """A known error: exit code 1 and one ``error:`` line on stderr holding every fragment."""
    lines = err.strip().splitlines()
    assert code == 1, err[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert "unexpected" not in lines[0] and "Traceback" not in err, lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# What a page shows once loaded, as a headless browser sees it: every picture decoded (its natural
# size) and every chart laid out (its box), the texts of the table cells and of the charts.
PAGE_PROBE = """
window.addEventListener('load', () => {
  const box = (e) => { const b = e.getBoundingClientRect(); return [Math.round(b.width), Math.round(b.height)]; };
  const seen = {
    images: [...document.images].map((i) => ({complete: i.complete, width: i.naturalWidth, height: i.naturalHeight,
                                             shown: box(i)})),
    charts: [...document.querySelectorAll('svg')].map((s) => ({box: box(s),
      texts: [...s.querySelectorAll('text')].map((t) => t.textContent.trim()).filter((t) => t)})),
    headers: [...document.querySelectorAll('th')].map((t) => t.textContent.trim()),
    cells: [...document.querySelectorAll('td')].map((t) => t.textContent.trim()),
  };
  document.body.setAttribute('data-probe', JSON.stringify(seen));
});
"""


def chromium() -> str | None:
    """Debian's headless Chromium (``.ci/run`` installs it); None where it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def render_in_chromium(page: Path, tmp_path: Path) -> dict:
    """Load a copy of ``page`` in headless Chromium with :data:`PAGE_PROBE` added, and return what
    the probe saw. The page itself is not changed."""
    import html
    import json
    import re

    browser = chromium()
    if browser is None:
        raise RuntimeError("chromium is not installed (apt-get install -y chromium)")
    probed = tmp_path / f"probed-{page.name}"
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", f"<script>{PAGE_PROBE}</script></body>"),
                      encoding="utf-8")
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    found = re.search(r'data-probe="([^"]*)"', result.stdout)
    if found is None:
        raise AssertionError(f"the page did not load in chromium (exit {result.returncode}): {result.stderr[-2000:]}")
    return json.loads(html.unescape(found.group(1)))


def random_lpips_weights(path: Path) -> Path:
    """A made-up LPIPS weights file (seeded): torchvision's AlexNet features under their own names
    and five linear heads as the lpips package names them. It scores nothing well; it lets a test
    show an LPIPS column without weights from the internet."""
    import torch
    from safetensors.torch import save_file
    from torchvision.models import alexnet

    torch.manual_seed(0)
    features = {f"features.{key}": value for key, value in alexnet(weights=None).features.state_dict().items()}
    heads = {f"lin{k}.model.1.weight": torch.rand(1, channels, 1, 1) for k, channels in enumerate((64, 192, 384, 256, 256))}
    save_file(features | heads, str(path))
    return path
