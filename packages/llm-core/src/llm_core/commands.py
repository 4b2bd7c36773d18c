"""The ``scratchlm`` command of llm-core: ``plugins``."""

from __future__ import annotations

import json

import typer

__all__ = ["plugins_command"]


def plugins_command(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
) -> None:
    """List installed plugins: name, version, hooks, what each registered and any load errors."""
    from llm_core.manager import get_manager

    manager = get_manager()
    infos = manager.plugins()
    problems = [p for p in manager.problems if p.plugin not in {i.name for i in infos}]
    if as_json:
        data = [info.to_dict() for info in infos]
        data += [
            {
                "name": p.plugin,
                "distribution": None,
                "version": None,
                "builtin": False,
                "loaded": False,
                "hooks": [],
                "registered": {},
                "errors": [f"{p.stage}: {p.message}"],
            }
            for p in problems
        ]
        typer.echo(json.dumps(data, indent=2))
        return
    from llm_core.versions import installed_versions

    packages = [f"{name} {version}" for name, version in installed_versions().items() if version]
    typer.echo(f"scratchlm packages: {', '.join(packages)}")
    for info in infos:
        origin = "built-in" if info.builtin else "third-party"
        version = info.version or "unknown version"
        typer.echo(f"{info.name} ({info.distribution or 'local'} {version}, {origin})")
        hooks = ", ".join(sorted(info.hooks)) or "none"
        typer.echo(f"  hooks: {hooks}")
        for kind, names in sorted(info.registered.items()):
            typer.echo(f"  {kind}: {', '.join(sorted(names))}")
        for error in info.errors:
            typer.secho(f"  error: {error}", fg="red")
    for problem in problems:
        typer.secho(f"{problem.plugin}: error: {problem.stage}: {problem.message}", fg="red")
