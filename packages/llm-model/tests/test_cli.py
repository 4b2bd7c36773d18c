"""The scratchlm commands: model-info, generate, import-hf, export-hf; errors are one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from llm_core import hookimpl
from llm_core.cli import main
from llm_model import GPTModel, build_model, load_pretrained, save_pretrained


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_model_info_prints_the_book_values(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "model-info", "--preset", "gpt2-124m")
    assert code == 0
    assert "parameters: 163,009,536" in out and "124,412,160" in out and "621.83 MB" in out


def test_model_info_json_and_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "model-info", "--arch", "gpt2", "--preset", "tiny", "--set", "tie_weights=true", "--json"
    )
    info = json.loads(out)
    assert code == 0 and info["config"]["tie_weights"] is True
    assert info["parameters"] == info["parameters_without_head"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["model-info", "--preset", "gpt2-9b"], "unknown preset 'gpt2-9b' for architecture 'gpt2'"),
        (["model-info", "--arch", "rwkv"], "unknown architecture 'rwkv'"),
        (["model-info", "--preset", "tiny", "--set", "n_heads=5"], "n_heads=5 does not divide emb_dim=64"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


class CharTokenizerPlugin:
    """Registers the test's char tokenizer as 'char' (llm-data is not a dependency of llm-model)."""

    def __init__(self, tokenizer_class: type) -> None:
        self.tokenizer_class = tokenizer_class

    @hookimpl
    def register_tokenizers(self, register: Any) -> None:
        register("char", self.tokenizer_class)


@pytest.fixture
def checkpoint(model: GPTModel, tmp_path: Path) -> Path:
    return save_pretrained(model, tmp_path / "ckpt", tokenizer="char")


def test_generate_uses_the_checkpoint_tokenizer(
    capsys: pytest.CaptureFixture[str],
    checkpoint: Path,
    tokenizer: Any,
    register_plugin: Any,
    model: GPTModel,
) -> None:
    register_plugin(CharTokenizerPlugin(type(tokenizer)), "char-tokenizer")
    code, out, _ = run(capsys, "generate", str(checkpoint), "Hello", "--max-new-tokens", "8", "--json")
    record = json.loads(out)
    assert code == 0 and record["tokenizer"] == "char" and record["prompt"] == "Hello"
    ids = torch.tensor(tokenizer.encode("Hello"))
    from llm_model import generate

    expected = generate(model, ids, 8, eos_id=tokenizer.eos_id)[5:].tolist()
    expected = expected[: expected.index(96)] if 96 in expected else expected
    assert record["completion"] == tokenizer.decode(expected)
    code, plain, _ = run(capsys, "generate", str(checkpoint), "Hello", "--max-new-tokens", "8")
    assert plain == "Hello" + record["completion"] + "\n"
    code, streamed, _ = run(capsys, "generate", str(checkpoint), "Hello", "--max-new-tokens", "8", "--stream")
    assert streamed == plain
    code, uncached, _ = run(
        capsys, "generate", str(checkpoint), "Hello", "--max-new-tokens", "8", "--no-cache"
    )
    assert uncached == plain


def test_generate_sampling_is_reproducible_with_a_seed(
    capsys: pytest.CaptureFixture[str], checkpoint: Path, tokenizer: Any, register_plugin: Any
) -> None:
    register_plugin(CharTokenizerPlugin(type(tokenizer)), "char-tokenizer")
    argv = ["generate", str(checkpoint), "Hi", "--temperature", "1.2", "--top-k", "20", "--top-p", "0.9"]
    first = run(capsys, *argv, "--seed", "5")[1]
    assert first == run(capsys, *argv, "--seed", "5")[1]


def test_generate_bad_options_and_missing_tokenizer(
    capsys: pytest.CaptureFixture[str], checkpoint: Path, tokenizer: Any, register_plugin: Any
) -> None:
    code, _, err = run(capsys, "generate", str(checkpoint), "Hi", "--tokenizer", "no-such-tokenizer")
    assert code == 2 and "unknown tokenizer 'no-such-tokenizer'" in err and "llm-data" in err
    register_plugin(CharTokenizerPlugin(type(tokenizer)), "char-tokenizer")
    code, _, err = run(capsys, "generate", str(checkpoint), "Hi", "--top-p", "1.5")
    assert code == 2 and "top_p: expected a number in (0, 1]" in err
    code, _, err = run(capsys, "generate", str(checkpoint), "", "--max-new-tokens", "3")
    assert code == 2 and "empty prompt" in err
    code, _, err = run(capsys, "generate", str(checkpoint / "missing"), "Hi")
    assert code == 2 and "expected a checkpoint directory" in err


def test_import_and_export_hf(capsys: pytest.CaptureFixture[str], model: GPTModel, tmp_path: Path) -> None:
    save_pretrained(model, tmp_path / "ckpt")
    code, _, err = run(capsys, "export-hf", str(tmp_path / "ckpt"), "--out", str(tmp_path / "hf"))
    assert code == 0, err
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["n_embd"] == 32
    code, _, err = run(capsys, "import-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "back"))
    assert code == 0, err
    back = load_pretrained(tmp_path / "back")
    assert back.checkpoint_config["tokenizer"] == "gpt2"
    idx = torch.randint(0, 97, (1, 6))
    with torch.no_grad():
        torch.testing.assert_close(back(idx), model(idx), atol=1e-6, rtol=0)
    code, _, err = run(capsys, "import-hf", str(tmp_path / "nothing" / "here"), "--out", str(tmp_path / "x"))
    assert code == 2 and "expected a local directory" in err


def test_import_and_export_hf_never_write_into_a_users_directory(
    capsys: pytest.CaptureFixture[str], model: GPTModel, tmp_path: Path
) -> None:
    save_pretrained(model, tmp_path / "ckpt")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"mine": true}')  # looks like a checkpoint, is the user's
    for argv in (
        ["export-hf", str(tmp_path / "ckpt"), "--out", str(mine)],
        ["import-hf", str(tmp_path / "hf"), "--out", str(mine)],
    ):
        code, _, err = run(capsys, *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert f"--out {mine}: not empty (config.json) and not written by scratchlm" in err  # before any work
        assert (mine / "config.json").read_text() == '{"mine": true}'
    assert run(capsys, "export-hf", str(tmp_path / "ckpt"), "--out", str(tmp_path / "hf"))[0] == 0
    assert (
        run(capsys, "export-hf", str(tmp_path / "ckpt"), "--out", str(tmp_path / "hf"))[0] == 0
    )  # its own: again
    code, _, err = run(capsys, "import-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "hf"))
    assert code == 2 and "holds the output of `scratchlm export-hf`, not of `scratchlm import-hf`" in err
    assert run(capsys, "import-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "back"))[0] == 0
    assert (
        run(capsys, "import-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "back"))[0] == 0
    )  # replaces its own
    assert json.loads((tmp_path / "back" / ".scratchlm-run.json").read_text())["command"] == "import-hf"
    load_pretrained(tmp_path / "back")
    code, _, err = run(capsys, "export-hf", str(tmp_path / "ckpt"), "--out", str(mine), "--overwrite")
    assert code == 0, err  # the user's choice


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (str(10**12), "--max-new-tokens 1000000000000: expected 0 to 1,000,000 tokens in one run"),
        ("-1", "--max-new-tokens -1: expected 0 to 1,000,000"),
        ("1e12", "Invalid value for '--max-new-tokens'"),  # click's usage error: not an integer
    ],
)
def test_generate_refuses_an_absurd_max_new_tokens_before_loading(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, value: str, message: str
) -> None:
    code, out, err = run(capsys, "generate", str(tmp_path / "no-checkpoint"), "Hi", "--max-new-tokens", value)
    assert code == 2 and out == "" and "Traceback" not in err
    assert message in " ".join(err.split())


def test_generate_checks_checksums_unless_no_verify(
    capsys: pytest.CaptureFixture[str], checkpoint: Path, tokenizer: Any, register_plugin: Any
) -> None:
    register_plugin(CharTokenizerPlugin(type(tokenizer)), "char-tokenizer")
    weights = checkpoint / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x10  # a bit inside the tensor data: the file still parses
    weights.write_bytes(bytes(data))
    code, out, err = run(capsys, "generate", str(checkpoint), "Hi", "--max-new-tokens", "2")
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and out == "" and len(errors) == 1 and "Traceback" not in err
    assert errors[0].startswith(f"error: {weights}: checksum mismatch") and "--no-verify" in errors[0]
    code, out, err = run(capsys, "generate", str(checkpoint), "Hi", "--max-new-tokens", "2", "--no-verify")
    assert code == 0 and out.startswith("Hi"), err


def test_positional_out_still_works_with_a_deprecation_line(tmp_path, capsys) -> None:
    """0.2's `export-hf CHECKPOINT OUT` keeps working for one release, with a warning."""
    save_pretrained(build_model("gpt2", preset="tiny"), tmp_path / "ckpt")
    code, _, err = run(capsys, "export-hf", str(tmp_path / "ckpt"), str(tmp_path / "hf"))
    assert code == 0 and (tmp_path / "hf" / "config.json").is_file()
    assert "OUT as a positional argument is deprecated" in err and "--out" in err
    code, _, err = run(
        capsys, "export-hf", str(tmp_path / "ckpt"), str(tmp_path / "a"), "--out", str(tmp_path / "b")
    )
    assert code == 2 and "give the output once" in err
