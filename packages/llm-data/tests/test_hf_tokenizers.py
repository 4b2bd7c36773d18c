"""A checkpoint's own tokenizer.json: read by tokenizers, with its special tokens, EOS ids, chat template."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_core.errors import DataError
from llm_data import get_tokenizer
from llm_data.hf_tokenizers import HFTokenizer

tokenizers = pytest.importorskip("tokenizers")

TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ raise_exception('no system messages') }}{% endif %}"
    "{{ '<|user|>' if m['role'] == 'user' else '<|bot|>' }}{{ m['content'] | trim }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|bot|>{% endif %}"
)


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    """tokenizer.json (byte-level BPE, BOS added by its post-processor) and the config files beside it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "</s>", "<|user|>", "<|bot|>", "<|end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(["hello world, hello tokenizers"] * 10, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    tok.save(str(tmp_path / "tokenizer.json"))
    config = {"bos_token": "<s>", "eos_token": {"content": "</s>"}, "chat_template": TEMPLATE}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [4, 1]}))
    return tmp_path


def test_encode_decode_special_tokens_and_eos_ids(checkpoint: Path) -> None:
    tok = get_tokenizer(str(checkpoint / "tokenizer.json"))  # found by file name: no "format" key
    assert isinstance(tok, HFTokenizer)
    ids = tok.encode("hello world")
    assert ids[0] == 0 and tok.encode("hello world", add_special_tokens=False) == ids[1:]
    assert tok.decode(ids) == "hello world"  # <s> skipped
    assert tok.eos_ids == (4, 1) and tok.eot_token == 4  # generation_config first, then eos_token
    assert tok.special_tokens == {"bos_token": "<s>", "eos_token": "</s>"}
    assert tok.n_vocab == tok.backend.get_vocab_size(with_added_tokens=True)


def test_chat_template_renders_in_the_sandbox(checkpoint: Path) -> None:
    tok = HFTokenizer(checkpoint / "tokenizer.json")
    messages = [{"role": "user", "content": " hi "}]
    assert tok.apply_chat_template(messages) == "<s><|user|>hi<|end|><|bot|>"
    assert tok.apply_chat_template(messages, add_generation_prompt=False) == "<s><|user|>hi<|end|>"
    ids = tok.encode_chat(messages)
    assert ids[:2] == [0, 2] and ids.count(0) == 1  # the template's BOS only: none added on top
    with pytest.raises(DataError, match="the chat template refused the conversation: no system messages"):
        tok.apply_chat_template([{"role": "system", "content": "x"}])


def test_a_template_cannot_escape_the_sandbox(checkpoint: Path) -> None:
    config = json.loads((checkpoint / "tokenizer_config.json").read_text())
    config["chat_template"] = "{{ messages.__class__.__mro__[1].__subclasses__() }}"
    (checkpoint / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(DataError, match="chat template"):
        HFTokenizer(checkpoint / "tokenizer.json").apply_chat_template([{"role": "user", "content": "x"}])


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        (
            "tokenizer.json",
            "{not json",
            "tokenizer.json: expected a Hugging Face tokenizer.json, found unparseable",
        ),
        ("tokenizer.json", '{"model": {"type": "Nope"}}', "found unparseable content"),
        ("tokenizer_config.json", "[1, 2]", "tokenizer_config.json: expected a JSON object, found list"),
        ("generation_config.json", '{"eos_token_id": 99999}', "eos_token_id 99999 is not a token id"),
        ("tokenizer_config.json", '{"chat_template": "{% for %}"}', "the chat template does not parse"),
    ],
)
def test_bad_files_are_one_line_errors(checkpoint: Path, file: str, content: str, message: str) -> None:
    (checkpoint / file).write_text(content)
    with pytest.raises(DataError) as info:
        HFTokenizer(checkpoint / "tokenizer.json").apply_chat_template([{"role": "user", "content": "x"}])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_registered_name_needs_a_path() -> None:
    with pytest.raises(DataError, match=r"pass the path of its tokenizer\.json"):
        get_tokenizer("huggingface")
