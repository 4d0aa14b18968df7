"""The ``zoo`` command line: a thin typer layer over the library, one module per noun.

Data goes to stdout (``--json`` where a list is printed), diagnostics to stderr. Known errors
(:class:`~pix2pix_zoo.errors.ZooError`) print one line and exit 1; ``ZOO_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import gc
import os
import sys

import typer
# typer carries its own copy of click (pinned in pyproject.toml): its exceptions are these, not click's.
from typer._click import exceptions as click

from pix2pix_zoo import __version__
from pix2pix_zoo.errors import ZooError, first_line

DEBUG_VARIABLE = "ZOO_DEBUG"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"pix2pix-zoo {__version__}")
        raise typer.Exit()


def make_app() -> typer.Typer:
    """The root app with the built-in commands and every plugin's ``register_commands``."""
    from pix2pix_zoo.cli import benchmark, compare, components, data, evaluate, export, info, plugins, serve, sweep, train, translate, translators
    from pix2pix_zoo.plugins import get_host

    app = typer.Typer(
        name="zoo",
        help="pix2pix-zoo: paired image-to-image translation models, from spec strings and plugins.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def root(
        version: bool = typer.Option(
            False, "--version", callback=_print_version, is_eager=True, help="Show the version and exit."
        ),
    ) -> None:
        """pix2pix-zoo: paired image-to-image translation models, from spec strings and plugins."""

    app.command("components")(components.components)
    app.add_typer(plugins.app, name="plugins")
    app.command("info")(info.info)
    app.add_typer(data.app, name="data")
    app.command("train")(train.train)
    app.command("sweep")(sweep.sweep)
    app.command("compare")(compare.compare)
    app.command("list")(translators.list_translators)
    app.command("pull")(translators.pull)
    app.command("publish")(translators.publish)
    app.command("translate")(translate.translate)
    app.command("eval")(evaluate.evaluate)
    app.command("serve")(serve.serve)
    app.command("export")(export.export)
    app.command("benchmark")(benchmark.benchmark)
    _add_plugin_commands(app, get_host())
    return app


def command_paths(app: typer.Typer) -> list[tuple[str, ...]]:
    """The words that call each command and subcommand of ``app``, the root's ``()`` first: what the
    startup test and benchmark run with ``--help``."""

    def walk(command, words: tuple[str, ...]) -> list[tuple[str, ...]]:
        subcommands = getattr(command, "commands", {})  # a group's; a plain command has none
        return [words, *(path for name in sorted(subcommands) for path in walk(subcommands[name], (*words, name)))]

    return walk(typer.main.get_command(app), ())


def _add_plugin_commands(app: typer.Typer, host) -> None:
    """Call every plugin's ``register_commands`` and note which commands each one added.

    The hooks run one after another, so the commands that appeared after a plugin's call began
    (and before the next plugin's) are that plugin's.
    """

    def names() -> list[str]:
        commands = [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands if c.callback]
        return commands + [g.name for g in app.registered_groups if g.name]

    calls: list[tuple[str, list[str]]] = []

    def arguments(plugin_name: str) -> dict:
        calls.append((plugin_name, names()))
        return {"app": app}

    host.call_each("register_commands", arguments)
    after = [before for _, before in calls[1:]] + [names()]
    for (plugin_name, before), later in zip(calls, after):
        for name in later:
            if name not in before:
                host.note_added(plugin_name, "command", name)


def main(argv: list[str] | None = None, prog_name: str = "zoo") -> None:
    """Console-script entry point: every error ends the process as one line on stderr.

    Known errors (:class:`ZooError`), usage errors (a missing argument, an option's bad value) and
    the operating system's refusals (a full disk, a folder where a file belongs) print ``error:``
    and one sentence, exit code 1. Anything else is a defect of the zoo: one line that says so,
    exit code 1. ``ZOO_DEBUG=1`` shows the traceback of all of them.

    Run as the process's command (``argv`` None: the console script, ``python -m pix2pix_zoo``), it
    freezes the garbage collector before exiting: the interpreter's teardown would otherwise search
    every object torch, matplotlib and the CLI made for cycles, 1.3-1.8 s at the end of a
    ``zoo train`` (0.4 s frozen). Every file the zoo writes is closed before this, so nothing waits on
    that search.
    """
    code = _run(argv, prog_name)
    if argv is None:
        gc.freeze()
    sys.exit(code)


def _run(argv: list[str] | None, prog_name: str) -> int:
    """The command's exit code, its errors said in one line (see :func:`main`)."""
    try:
        code = make_app()(args=argv, prog_name=prog_name, standalone_mode=False)
    except click.NoArgsIsHelpError:
        return 1  # the help has been printed: it says what to type
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
            raise
        print(f"error: {_one_line(_error_line(error))}", file=sys.stderr)
        return 1
    if code == 130:  # typer's answer to Ctrl-C (and to SIGTERM where a download turned it into one)
        print("error: interrupted", file=sys.stderr)
    return code if isinstance(code, int) else 0  # an exit code as click's standalone mode gives


def _error_line(error: Exception) -> str:
    """The sentence that stands for ``error`` on the command line."""
    if isinstance(error, click.UsageError):
        command = error.ctx.command_path if error.ctx is not None else "zoo"
        message = error.format_message().rstrip(".")
        return f"{command}: {message[:1].lower()}{message[1:]} (see '{command} --help')"
    if isinstance(error, click.ClickException):
        return error.format_message()
    if isinstance(error, ZooError):
        return str(error)
    if isinstance(error, typer.Abort):
        return "aborted"
    if isinstance(error, OSError):  # the system refused: a full disk, a folder where a file belongs
        reason = error.strerror or str(error) or type(error).__name__
        return f"{reason}: {str(error.filename)!r}" if error.filename is not None else reason
    return (f"unexpected {type(error).__name__}: {first_line(error)[:200]} (a defect of pix2pix-zoo; "
            f"{DEBUG_VARIABLE}=1 shows the traceback)")


def _one_line(text: str) -> str:
    return " ".join(text.split())

