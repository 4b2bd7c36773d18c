"""Instruction finetuning: templates, prompt masking, the SFT run, test responses, LoRA, chat."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
import torch

from llm_core.cli import main
from llm_core.errors import ConfigError, DataError
from llm_data import format_input, get_tokenizer
from llm_finetune.chat import chat_loop
from llm_finetune.checkpoints import load_finetuned
from llm_finetune.config import InstructConfig
from llm_finetune.instruct import InstructionTask, SFTDataset, finetune_instructions, load_instruction_data
from llm_finetune.templates import get_template
from llm_model import load_pretrained

ENTRY = {"instruction": "Name a colour.", "input": "", "output": "Blue."}


def test_alpaca_template_is_the_book_prompt() -> None:
    template = get_template("alpaca")
    assert template.prompt(ENTRY) == format_input(ENTRY)
    assert (
        template.prompt(ENTRY) + template.response(ENTRY) == format_input(ENTRY) + "\n\n### Response:\nBlue."
    )
    assert template.extract_response("### Response:\n Blue.\n\n### Instruction:\nmore") == "Blue."


def test_llama_template_wraps_the_instruction() -> None:
    template = get_template("llama")
    text = template.prompt({**ENTRY, "input": "in"}) + template.response(ENTRY)
    assert text.startswith("<s>[INST] <<SYS>>") and text.endswith("Name a colour.\n\nin [/INST] Blue. </s>")
    assert template.extract_response("Blue. </s><s>[INST] again") == "Blue."


def test_unknown_template_lists_the_templates() -> None:
    with pytest.raises(ConfigError, match="expected one of alpaca, llama"):
        get_template("chatml")


def test_mask_prompt_ignores_the_prompt_tokens() -> None:
    tok = get_tokenizer("gpt2")
    data = SFTDataset([ENTRY, {**ENTRY, "output": "A longer answer here."}], tok, get_template("alpaca"),
                      max_length=256)  # fmt: skip
    common = dict(train=data, val=data, eval_batches=1, batch_size=2, tokenizer_name="gpt2", info={})
    task = InstructionTask(**common, pad_token_id=50256, context_length=256, mask_prompt=True)
    inputs, targets = task.collate([data[0], data[1]])
    ids, prompt_length = data[0]
    assert (targets[0, : prompt_length - 1] == -100).all()
    assert targets[0, prompt_length - 1 : len(ids) - 1].tolist() == ids[prompt_length:]
    assert targets[0, len(ids) - 1] == 50256  # the first end-of-text target is kept
    unmasked = InstructionTask(**common, pad_token_id=50256, context_length=256, mask_prompt=False)
    assert (unmasked.collate([data[0], data[1]])[1][0, : prompt_length - 1] != -100).all()
    assert inputs.shape == targets.shape


def test_too_long_examples_are_counted_or_refused() -> None:
    tok = get_tokenizer("gpt2")
    data = SFTDataset([ENTRY], tok, get_template("alpaca"), max_length=16)
    assert data.truncated == 1
    with pytest.raises(
        DataError, match=r"#0: \d+ tokens with the end-of-text token, more than the context \(16\)"
    ):
        SFTDataset([ENTRY], tok, get_template("alpaca"), max_length=16, on_long="error", name="x.json")


def test_a_record_missing_output_names_file_and_record(tmp_path) -> None:
    path = tmp_path / "data.json"
    path.write_text(json.dumps([ENTRY, {"instruction": "x", "input": ""}], indent=1), encoding="utf-8")
    with pytest.raises(DataError, match=r"data\.json:\d+: record #1 lacks output"):
        load_instruction_data(str(path))


def test_sft_lowers_the_loss_and_answers_the_test_split(byte_checkpoint, instruction_slice, tmp_path, quiet):
    config = InstructConfig(model=byte_checkpoint, data=instruction_slice, out=tmp_path / "sft", max_steps=20,
                            batch_size=4, lr=2e-3, eval_every=20, eval_batches=2, max_new_tokens=6,
                            test_limit=2, **quiet)  # fmt: skip
    run = finetune_instructions(config, echo=lambda _: None)
    assert run.val_loss < run.initial_val_loss - 1.0
    records = json.loads(run.responses_file.read_text())
    assert len(records) == 2 and all(isinstance(r["model_response"], str) for r in records)
    reference = json.loads(instruction_slice.read_text())[34:36]  # 85% train of 40 = 34
    assert [r["output"] for r in records] == [r["output"] for r in reference]
    config = json.loads((run.final_dir / "config.json").read_text())
    assert config["finetune"]["template"] == "alpaca" and config["finetune"]["mask_prompt"] is False
    assert run.truncated > 0  # byte tokens: most examples are longer than the 64-token context
    assert load_finetuned(run.final_dir).model.config.emb_dim == 64


def test_cli_instruct_with_lora_and_llama_template(base_checkpoint, instruction_slice, tmp_path) -> None:
    out = tmp_path / "lora"
    code = main(
        ["finetune", "instruct", str(base_checkpoint), "--data", str(instruction_slice),
         "--out", str(out), "--trainable", "lora", "--template", "llama", "--max-steps", "2",
         "--batch-size", "2", "--eval-every", "0", "--test-limit", "1", "--max-new-tokens", "3",
         "--no-progress"]
    )  # fmt: skip
    assert code == 0
    config = json.loads((out / "final" / "config.json").read_text())
    assert config["finetune"]["lora"]["rank"] == 8 and config["finetune"]["template"] == "llama"
    assert (out / "adapters.safetensors").is_file()
    model = load_finetuned(out / "final").model
    assert type(model.trf_blocks[0].att.W_query).__name__ == "LinearWithLoRA"
    assert model.trf_blocks[0].att.W_query.lora.B.abs().sum() > 0  # the adapters moved
    merged = load_pretrained(out / "merged")  # a plain checkpoint: what serve/evaluate read
    assert type(merged.trf_blocks[0].att.W_query).__name__ == "Linear"
    assert json.loads((out / "merged" / "config.json").read_text())["finetune"]["lora"] is None
    ids = torch.randint(0, 50257, (1, 6))
    with torch.no_grad():
        torch.testing.assert_close(model(ids), merged(ids), atol=1e-5, rtol=1e-5)


def test_chat_loop_answers_each_line_and_stops_at_eof(base_checkpoint) -> None:
    model = load_finetuned(base_checkpoint).model
    written: list[str] = []
    answered = chat_loop(
        model, get_tokenizer("gpt2"), get_template("alpaca"), io.StringIO("Hi\n\nName a colour.\n"),
        written.append, max_new_tokens=4,
    )  # fmt: skip
    assert answered == 2
    assert "".join(written).count("> ") == 4  # two answers, one empty line, then EOF


def test_chat_command_reads_stdin_until_eof(base_checkpoint) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llm_core.cli", "chat", str(base_checkpoint), "--max-new-tokens", "3"],
        input="Name a colour.\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_stream_matches_greedy_generation(base_checkpoint) -> None:
    from llm_finetune.chat import stream_response
    from llm_model import generate_text

    model, tok, template = (
        load_finetuned(base_checkpoint).model,
        get_tokenizer("gpt2"),
        get_template("alpaca"),
    )
    pieces: list[str] = []
    stream_response(model, tok, template, "Name a colour.", pieces.append, max_new_tokens=8)
    expected = generate_text(model, tok, template.chat_prompt("Name a colour."), 8,
                             stop_strings=list(template.stop_strings))  # fmt: skip
    assert "".join(pieces) == expected


def test_chat_and_classify_check_checksums_unless_no_verify(
    base_checkpoint, tmp_path, monkeypatch, capsys
) -> None:
    import io
    import shutil

    from llm_core.cli import main

    damaged = shutil.copytree(base_checkpoint, tmp_path / "damaged")
    weights = damaged / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-9] ^= 0x04  # inside the tensor data: the file still parses
    weights.write_bytes(bytes(data))
    for argv in (["chat", str(damaged), "--max-new-tokens", "2"], ["classify", str(damaged), "some text"]):
        monkeypatch.setattr(sys, "stdin", io.StringIO("Name a colour.\n"))
        assert main(argv) == 2
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in err
        assert errors[0].startswith(f"error: {weights}: checksum mismatch")
    monkeypatch.setattr(sys, "stdin", io.StringIO("Name a colour.\n"))
    assert main(["chat", str(damaged), "--max-new-tokens", "2", "--no-verify"]) == 0


def test_finetune_from_a_damaged_base_is_one_line_unless_no_verify(base_checkpoint, tmp_path, capsys) -> None:
    import json
    import shutil

    from llm_core.cli import main

    damaged = shutil.copytree(base_checkpoint, tmp_path / "damaged")
    weights = damaged / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-11] ^= 0x08
    weights.write_bytes(bytes(data))
    records = [{"instruction": f"Repeat {i}.", "input": "", "output": f"{i}"} for i in range(24)]
    (tmp_path / "data.json").write_text(json.dumps(records))
    argv = ["finetune", "instruct", str(damaged), "--data", str(tmp_path / "data.json"), "--test-limit", "0"]
    argv += ["--max-steps", "1", "--batch-size", "2", "--eval-batches", "1", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err
    assert errors[0].startswith(f"error: {weights}: checksum mismatch")
    assert main([*argv, "--out", str(tmp_path / "run2"), "--no-verify"]) == 0, capsys.readouterr().err
