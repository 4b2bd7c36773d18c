"""The ``scratchlm`` CLI: version, plugins listing, error formatting and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llm_core import __version__, reset_manager
from llm_core.cli import EXIT_ERROR, main
from llm_core.providers import is_installed


@pytest.fixture(autouse=True)
def fresh_manager(monkeypatch: pytest.MonkeyPatch):
    """Each CLI test loads plugins from the environment it sets."""
    monkeypatch.setenv("SCRATCHLM_PLUGINS", "example")
    reset_manager()
    yield
    reset_manager()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed console script (falls back to the module next to this interpreter)."""
    script = Path(sys.executable).with_name("scratchlm")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "llm_core.cli"]
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*command, *args], capture_output=True, text=True, env=full_env, timeout=120)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_plugins_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    keys = {"name", "distribution", "version", "builtin", "loaded", "hooks", "registered", "errors"}
    assert all(set(item) == keys for item in data)
    by_name = {item["name"]: item for item in data}
    assert by_name["llm_core"]["builtin"] is True
    assert by_name["llm_core"]["distribution"] == "llm-core"
    assert by_name["example"]["registered"] == {"tokenizers": ["example-chars"]}
    assert by_name["example"]["hooks"] == ["register_commands", "register_tokenizers"]


def test_plugins_json_reports_broken_plugins(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("SCRATCHLM_PLUGINS", "example,broken_import,broken_hook")
    reset_manager()
    assert main(["plugins", "--json"]) == 0
    by_name = {item["name"]: item for item in json.loads(capsys.readouterr().out)}
    assert by_name["broken_import"]["loaded"] is False
    assert "some_missing_dependency" in by_name["broken_import"]["errors"][0]
    assert any("boom in register_optimizers" in e for e in by_name["broken_hook"]["errors"])
    assert by_name["example"]["errors"] == []


def test_plugin_command_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["example-hello", "--name", "tea"]) == 0
    assert capsys.readouterr().out == "hello tea\n"


def test_expected_error_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["example-fail"]) == EXIT_ERROR
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        "error: example.toml: lr=-1 must be positive; pass --lr with a value > 0"
    ]
    assert "Traceback" not in captured.err


def test_debug_shows_traceback() -> None:
    result = run_cli("--debug", "example-fail", env={"SCRATCHLM_PLUGINS": "example"})
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "ConfigError" in result.stderr


def test_console_script_error_exit_code() -> None:
    result = run_cli("example-fail", env={"SCRATCHLM_PLUGINS": "example"})
    assert result.returncode == EXIT_ERROR
    assert result.stderr.strip() == "error: example.toml: lr=-1 must be positive; pass --lr with a value > 0"


def test_unknown_command_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    assert "No such command" in capsys.readouterr().err


def test_broken_plugin_warns_but_cli_works() -> None:
    result = run_cli("example-hello", env={"SCRATCHLM_PLUGINS": "example,broken_import,broken_hook"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello world\n"
    assert "plugin 'broken_import' failed at import" in result.stderr
    assert "plugin 'broken_hook' failed at hook:register_commands" in result.stderr


def test_help_explains_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--json" in out and "JSON list" in out


def test_core_does_not_import_torch() -> None:
    code = "import sys, llm_core, llm_core.cli; llm_core.cli.build_app(); print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "SCRATCHLM_PLUGINS": ""},
        timeout=60,
    )
    assert result.stdout.strip() == "False", result.stderr


def test_a_known_command_of_a_missing_package_names_the_package(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from llm_core import providers

    monkeypatch.setitem(providers.COMMAND_PACKAGES, "frobnicate", "llm-frob")
    assert main(["frobnicate", "x"]) == EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "`scratchlm frobnicate` comes from llm-frob, which is not installed: pip install llm-frob" in err


def test_a_known_command_whose_package_is_installed_but_broken_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from llm_core import providers

    monkeypatch.setitem(providers.COMMAND_PACKAGES, "frobnicate", "llm-core")
    assert main(["frobnicate"]) == EXIT_ERROR
    assert "installed but did not register it; run `scratchlm plugins`" in capsys.readouterr().err


def test_an_unknown_command_keeps_clicks_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-thing"]) == EXIT_ERROR
    assert "No such command 'no-such-thing'" in capsys.readouterr().err


@pytest.mark.skipif(
    is_installed("llm-data"),
    reason="llm-data is installed here: the hint is for environments without it",
)
def test_tokenize_without_llm_data_names_llm_data(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tokenize", "hello"]) == EXIT_ERROR
    assert "pip install llm-data" in capsys.readouterr().err
