"""The registered datasets: the-verdict, python-docs, sms-spam, instructions (book figures)."""

from __future__ import annotations

import json

import pytest
import torch

from llm_core import get_registry
from llm_core.errors import DataError, PluginError
from llm_data import InstructionDataset, SpamDataset, custom_collate_fn, format_input, python_docs_text
from llm_data.instructions import load_instruction_file
from llm_data.sms_spam import parse_sms_spam


def dataset(name: str):
    return get_registry("datasets")[name].obj


def test_registered_datasets() -> None:
    assert {"python-docs", "the-verdict", "sms-spam", "instructions"} <= set(get_registry("datasets"))
    with pytest.raises(PluginError, match="unknown dataset 'nope'"):
        dataset("nope")


def test_python_docs_is_embedded_and_deterministic() -> None:
    text = python_docs_text()
    assert len(text) > 100_000 and text == python_docs_text()
    assert 'The "for" statement' in text
    docs = dataset("python-docs")()["train"]
    assert "\n\n".join(docs) + "\n" == text


def test_the_verdict_from_a_local_root(scratchlm_test_data) -> None:
    (text,) = dataset("the-verdict")(scratchlm_test_data)["train"]
    assert len(text) == 20479
    with pytest.raises(DataError, match=r"not found; expected the the-verdict file the-verdict\.txt"):
        dataset("the-verdict")(scratchlm_test_data / "nowhere")


def test_sms_spam_balanced_split(scratchlm_test_data) -> None:
    splits = dataset("sms-spam")(scratchlm_test_data)
    assert {k: len(v) for k, v in splits.items()} == {"train": 1045, "val": 149, "test": 300}
    everything = [r for split in splits.values() for r in split]
    assert sum(r["label"] for r in everything) == 747  # spam, ham undersampled to the same count
    assert splits == dataset("sms-spam")(scratchlm_test_data)  # seeded


def test_sms_spam_malformed_rows(tmp_path) -> None:
    path = tmp_path / "SMSSpamCollection"
    path.write_text("ham\tok\nspam no tab here\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"SMSSpamCollection:2: expected 'label<TAB>text'"):
        parse_sms_spam(path)
    path.write_text("ham\tok\neggs\tbad label\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"SMSSpamCollection:2: label 'eggs' is not one of ham, spam"):
        parse_sms_spam(path)


def test_sms_spam_rows_end_at_newlines_only(tmp_path) -> None:
    path = tmp_path / "SMSSpamCollection"
    path.write_bytes("ham\ta\x1eb\u2028c\x0cd\r\nspam\tsecond\r\n".encode())
    assert parse_sms_spam(path) == [
        {"text": "a\x1eb\u2028c\x0cd", "label": 0},
        {"text": "second", "label": 1},
    ]


def test_spam_dataset_pads_and_truncates(gpt2) -> None:
    records = [{"text": "Hi", "label": 0}, {"text": "WIN a free prize now!!!", "label": 1}]
    longest = SpamDataset(records, gpt2)
    ids, label = longest[0]
    assert longest.max_length == len(gpt2.encode("WIN a free prize now!!!"))
    assert ids.tolist() == gpt2.encode("Hi") + [50256] * (longest.max_length - 1)
    assert (label.item(), longest[1][1].item()) == (0, 1)
    short = SpamDataset(records, gpt2, max_length=3)
    assert short[1][0].tolist() == gpt2.encode("WIN a free prize now!!!")[:3]


def test_instructions_split_and_template(scratchlm_test_data) -> None:
    splits = dataset("instructions")(scratchlm_test_data)
    assert {k: len(v) for k, v in splits.items()} == {"train": 935, "test": 110, "val": 55}
    entry = {
        "instruction": "Identify the correct spelling of the following word.",
        "input": "Ocassion",
        "output": "x",
    }
    assert format_input(entry) == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the "
        "request.\n\n### Instruction:\nIdentify the correct spelling of the following word."
        "\n\n### Input:\nOcassion"
    )
    assert "### Input" not in format_input({**entry, "input": ""})


def test_malformed_instruction_json(tmp_path) -> None:
    path = tmp_path / "data.json"
    path.write_text('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c",\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"data\.json:4: invalid JSON"):
        load_instruction_file(path)
    path.write_text(
        json.dumps([{"instruction": "a", "output": "b"}, {"input": "c"}], indent=1), encoding="utf-8"
    )
    with pytest.raises(DataError, match=r"data\.json:6: record #1 lacks instruction, output"):
        load_instruction_file(path)
    path.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    with pytest.raises(DataError, match=r"data\.json: JSON nested too deeply"):
        load_instruction_file(path)


def test_book_collate_example() -> None:
    inputs, targets = custom_collate_fn([[0, 1, 2, 3, 4], [5, 6], [7, 8, 9]])
    assert inputs.tolist() == [[0, 1, 2, 3, 4], [5, 6, 50256, 50256, 50256], [7, 8, 9, 50256, 50256]]
    assert targets.tolist() == [[1, 2, 3, 4, 50256], [6, 50256, -100, -100, -100], [8, 9, 50256, -100, -100]]
    short, _ = custom_collate_fn([[0, 1, 2, 3, 4]], allowed_max_length=3)
    assert short.shape == (1, 3)


def test_collate_can_mask_the_prompt(gpt2) -> None:
    records = [{"instruction": "Say hi.", "input": "", "output": "Hi!"}]
    data = InstructionDataset(records, gpt2, with_prompt_length=True)
    ids, prompt_length = data[0]
    _, targets = custom_collate_fn([data[0]], mask_prompt=True)
    assert targets.dtype == torch.long
    assert (targets[0, : prompt_length - 1] == -100).all()
    assert targets[0, prompt_length - 1 :].tolist() == [*ids[prompt_length:], 50256]
    with pytest.raises(DataError, match=r"expected \(token_ids, prompt_length\) items"):
        custom_collate_fn([ids], mask_prompt=True)
