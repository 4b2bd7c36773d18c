"""The ``scratchlm`` command line: a typer app that plugins extend.

Every package adds its commands through the ``register_commands`` hook.
Expected errors (:class:`~llm_core.errors.ScratchLMError`) print one red line
on stderr and exit with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from llm_core.errors import PluginError, ScratchLMError
from llm_core.manager import get_manager
from llm_core.providers import COMMAND_PACKAGES, install_hint

__all__ = ["EXIT_ERROR", "build_app", "main", "version_lines"]

EXIT_ERROR = 2
_state: dict[str, bool] = {"debug": False}


def version_lines() -> list[str]:
    """``scratchlm --version``: llm-core's version, then each installed llm-* package's.

    A package outside llm-core's minor series (a mixed install) is marked.
    """
    from llm_core import __version__
    from llm_core.versions import installed_versions

    versions = installed_versions()
    series = __version__.split(".")[:2]
    lines = [f"scratchlm {__version__}"]
    for name, version in versions.items():
        if version is None:
            continue
        mark = "" if version.split(".")[:2] == series else f"  (not llm-core's {'.'.join(series)} series)"
        lines.append(f"  {name:<14} {version}{mark}")
    missing = [name for name, version in versions.items() if version is None]
    if missing:
        lines.append(f"  not installed: {', '.join(missing)}")
    return lines


def _version_callback(value: bool) -> None:
    if value:
        typer.echo("\n".join(version_lines()))
        raise typer.Exit()


def build_app() -> typer.Typer:
    """Create the root typer app and let every loaded plugin add its commands."""
    app = typer.Typer(
        name="scratchlm",
        help="scratchlm: build, train, finetune and evaluate GPT-style language models from scratch.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )

    @app.callback()
    def root(
        version: bool = typer.Option(
            False,
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Print the version of each installed scratchlm package and exit.",
        ),
        debug: bool = typer.Option(
            False, "--debug", help="Show full tracebacks instead of one-line error messages."
        ),
    ) -> None:
        """scratchlm command line. Run `scratchlm COMMAND --help` for each command."""
        _state["debug"] = debug

    get_manager().add_commands(app)
    return app


def _warn_plugin_problems(argv: list[str]) -> None:
    if argv[:1] == ["plugins"]:
        return  # the plugins command shows them in full
    for problem in get_manager().problems:
        typer.secho(f"warning: {problem} (see `scratchlm plugins`)", err=True, fg="yellow")


def _check_known_command(app: typer.Typer, args: list[str]) -> None:
    """A built-in command whose package is missing: say which package to install."""
    name = next((arg for arg in args if not arg.startswith("-")), None)
    if name is None or name not in COMMAND_PACKAGES:
        return  # no command, or an unknown one: click's own message lists the commands
    group = typer.main.get_command(app)
    if name not in getattr(group, "commands", {}):
        hint = install_hint(f"`scratchlm {name}`", COMMAND_PACKAGES[name])
        raise PluginError(f"no command '{name}' here: {hint}")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    _state["debug"] = "--debug" in args
    try:
        app = build_app()
        _warn_plugin_problems(args)
        _check_known_command(app, args)
        app(args=args, prog_name="scratchlm")  # standalone: usage errors print and exit 2
    except SystemExit as exc:
        code: Any = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except ScratchLMError as exc:
        if _state["debug"]:
            raise
        typer.secho(f"error: {exc}", err=True, fg="red")
        return EXIT_ERROR
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True, fg="red")
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
