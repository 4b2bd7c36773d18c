"""Real checkpoints end to end: GPT-2, Llama, Mistral and Phi as transformers publishes them.

Each family: a tiny random model saved by ``transformers`` in bf16, sharded in
several files, with a BPE tokenizer trained by ``tokenizers`` (and, for Llama
and Mistral, a chat template and several EOS ids) → ``scratchlm import-hf`` →
``scratchlm generate --temperature 0`` must print exactly what transformers'
greedy ``generate`` decodes with its own tokenizer, and the chat template must
give the same token ids as ``apply_chat_template``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from llm_core.cli import main

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Every model keeps its own tokenizer, its special tokens and its chat template.",
    "Hello world! How are you today? I am fine, thank you.",
    "Sharded weights in bf16: the files as they are published.",
] * 20
PROMPT = "The quick brown"

#: A Llama 3 style template: header tokens, <|eot_id|> ends a turn.
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{{ message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
#: A Mistral (v0.1) style template: [INST] … [/INST], roles must alternate, </s> after each answer.
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}"
)
MESSAGES = [
    {"role": "user", "content": "Hello world!"},
    {"role": "assistant", "content": "How are you today?"},
    {"role": "user", "content": "I am fine, thank you."},
]


def byte_level_tokenizer(specials: list[str], bos: str | None) -> Any:
    """A byte-level BPE (GPT-2, Llama 3, Phi style) trained on CORPUS; BOS added by the post-processor."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    if bos is not None:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def metaspace_tokenizer() -> Any:
    """A SentencePiece-like BPE (Llama 2 / Mistral style: ▁ for spaces, <s> added in front)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    specials = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=420, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return tok


#: Wider than transformers' 0.02, so a random model's greedy text varies instead of repeating one token.
INIT = 0.2


def shape(vocab: int) -> dict[str, Any]:
    return {
        "initializer_range": INIT,
        "vocab_size": vocab,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 64,
    }


def gpt2_family() -> tuple[Any, Any, dict[str, Any]]:
    tok = byte_level_tokenizer(["<|endoftext|>"], bos=None)
    eos = tok.token_to_id("<|endoftext|>")
    config = transformers.GPT2Config(
        vocab_size=tok.get_vocab_size(),
        n_positions=64,
        n_embd=64,
        n_layer=2,
        n_head=4,
        bos_token_id=eos,
        eos_token_id=eos,
        initializer_range=INIT,
    )
    return (
        transformers.GPT2LMHeadModel(config),
        tok,
        {"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>"},
    )


def llama_family() -> tuple[Any, Any, dict[str, Any]]:
    specials = [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
    ]
    tok = byte_level_tokenizer(specials, bos="<|begin_of_text|>")
    ids = {s: tok.token_to_id(s) for s in specials}
    config = transformers.LlamaConfig(
        **shape(tok.get_vocab_size()),
        intermediate_size=128,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        bos_token_id=ids["<|begin_of_text|>"],
        eos_token_id=[ids["<|end_of_text|>"], ids["<|eot_id|>"]],
    )
    special = {
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|end_of_text|>",
        "chat_template": LLAMA3_TEMPLATE,
    }
    return transformers.LlamaForCausalLM(config), tok, special


def mistral_family() -> tuple[Any, Any, dict[str, Any]]:
    tok = metaspace_tokenizer()
    config = transformers.MistralConfig(
        **shape(tok.get_vocab_size()),
        intermediate_size=128,
        num_key_value_heads=2,
        sliding_window=16,
        bos_token_id=tok.token_to_id("<s>"),
        eos_token_id=tok.token_to_id("</s>"),
    )
    special = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "chat_template": MISTRAL_TEMPLATE,
    }
    return transformers.MistralForCausalLM(config), tok, special


def phi_family() -> tuple[Any, Any, dict[str, Any]]:
    tok = byte_level_tokenizer(["<|endoftext|>"], bos=None)
    eos = tok.token_to_id("<|endoftext|>")
    config = transformers.PhiConfig(
        **shape(tok.get_vocab_size()),
        intermediate_size=256,
        partial_rotary_factor=0.5,
        eos_token_id=eos,
        bos_token_id=eos,
    )
    return (
        transformers.PhiForCausalLM(config),
        tok,
        {"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>"},
    )


FAMILIES: dict[str, Callable[[], tuple[Any, Any, dict[str, Any]]]] = {
    "gpt2": gpt2_family,
    "llama": llama_family,
    "mistral": mistral_family,
    "phi": phi_family,
}


def publish(family: str, directory: Path) -> tuple[Any, Any]:
    """Save a tiny random ``family`` model in bf16, sharded, with its trained tokenizer; return both."""
    torch.manual_seed(0)
    model, backend, special = FAMILIES[family]()
    model = model.to(torch.bfloat16).eval()
    model.save_pretrained(directory, max_shard_size="100KB")
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, **special)
    tokenizer.save_pretrained(directory)
    return model, transformers.PreTrainedTokenizerFast.from_pretrained(directory)


@pytest.fixture(scope="module", params=list(FAMILIES))
def published(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Any, Any, Path]:
    family = request.param
    directory = tmp_path_factory.mktemp(family) / "hf"
    model, tokenizer = publish(family, directory)
    return family, model, tokenizer, directory


def reference_model(directory: Path, dtype: torch.dtype) -> Any:
    """transformers' own model loaded from the published files (``torch_dtype=`` before transformers 4.56)."""
    major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    key = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    return transformers.AutoModelForCausalLM.from_pretrained(directory, **{key: dtype}).eval()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_import_then_generate_prints_what_transformers_decodes(
    published: tuple[str, Any, Any, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    family, _, tokenizer, directory = published
    shards = list(directory.glob("model-*-of-*.safetensors"))
    assert len(shards) >= 2, "the checkpoint must be sharded"
    out = tmp_path / "ckpt"
    code, _, err = run(capsys, "import-hf", str(directory), "--out", str(out))
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["dtype"] == "bfloat16" and config["tokenizer"] == "tokenizer.json"
    assert (out / "tokenizer.json").is_file()

    inputs = tokenizer(PROMPT, return_tensors="pt")
    argv = ["generate", str(out), PROMPT, "--temperature", "0", "--max-new-tokens", "20"]
    for dtype, option in ((torch.bfloat16, "auto"), (torch.float32, "fp32")):
        reference = reference_model(directory, dtype)
        with torch.no_grad():
            expected_ids = reference.generate(**inputs, max_new_tokens=20, do_sample=False, pad_token_id=0)
        new = expected_ids[0, inputs["input_ids"].shape[1] :]
        expected = PROMPT + tokenizer.decode(new, skip_special_tokens=True)
        code, printed, err = run(capsys, *argv, "--dtype", option)
        assert code == 0, err
        assert printed == expected + "\n", (family, option)


def test_the_chat_template_gives_transformers_token_ids(
    published: tuple[str, Any, Any, Path], tmp_path: Path
) -> None:
    from llm_data.hf_tokenizers import HFTokenizer

    family, _, tokenizer, directory = published
    ours = HFTokenizer(directory / "tokenizer.json")
    if tokenizer.chat_template is None:
        assert ours.chat_template is None
        pytest.skip(f"{family}: no chat template")
    for messages in (MESSAGES[:1], MESSAGES):
        expected = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=False
        )
        assert ours.encode_chat(messages) == list(expected)
        rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert ours.apply_chat_template(messages) == rendered
    assert ours.encode(PROMPT) == tokenizer(PROMPT)["input_ids"]


def _no_weights(directory: Path) -> None:
    for path in directory.glob("model*.safetensors*"):
        path.unlink()


def _truncated_shard(directory: Path) -> None:
    shard = sorted(directory.glob("model-*-of-*.safetensors"))[-1]
    shard.write_bytes(shard.read_bytes()[:-100])


def _missing_shard(directory: Path) -> None:
    sorted(directory.glob("model-*-of-*.safetensors"))[0].unlink()


def _bad_tokenizer(directory: Path) -> None:
    (directory / "tokenizer.json").write_text('{"model": {"type": "BPE", "vocab": 3}}')


def _raising_template(directory: Path) -> None:
    (directory / "chat_template.jinja").write_text(
        "{{ raise_exception('this template refuses every chat') }}"
    )


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_no_weights, "expected the weights as model.safetensors"),
        (_truncated_shard, "bytes missing"),
        (_missing_shard, "names 1 shard(s) that are not in"),
        (_bad_tokenizer, "tokenizer.json: expected a Hugging Face tokenizer.json, found unparseable content"),
        (_raising_template, "the chat template refused the conversation: this template refuses every chat"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    damage: Callable[[Path], None], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "hf"
    publish("llama", directory)
    damage(directory)
    capsys.readouterr()  # transformers' own progress bars
    out = tmp_path / "out"
    code, printed, err = run(capsys, "import-hf", str(directory), "--out", str(out))
    assert code == 2 and printed == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["hf"]  # no temporary leftovers


@pytest.mark.parametrize("dtype", ["auto", "fp32"])
def test_chat_renders_the_template_and_stops_at_end_of_turn(
    published: tuple[str, Any, Any, Path],
    dtype: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io
    import sys

    family, _, tokenizer, directory = published
    if tokenizer.chat_template is None:
        pytest.skip(f"{family}: no chat template")
    out = tmp_path / "ckpt"
    assert run(capsys, "import-hf", str(directory), "--out", str(out))[0] == 0
    message = [{"role": "user", "content": "Hello world!"}]
    ids = tokenizer.apply_chat_template(message, add_generation_prompt=True, tokenize=True, return_dict=False)
    torch_dtype = torch.float32 if dtype == "fp32" else torch.bfloat16
    reference = reference_model(directory, torch_dtype)
    with torch.no_grad():
        prompt = torch.tensor([ids])  # (1, t); the mask says BOS (id 0, like pad_token_id) is a real token
        generated = reference.generate(
            prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=30, do_sample=False, pad_token_id=0
        )
    new = generated[0, len(ids) :].tolist()
    eos = reference.generation_config.eos_token_id
    eos = [eos] if isinstance(eos, int) else list(eos)
    new = new[: min([new.index(e) for e in eos if e in new], default=len(new))]  # stopped at end of turn
    expected = tokenizer.decode(new, skip_special_tokens=True)
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hello world!\n"))
    code, printed, err = run(capsys, "chat", str(out), "--max-new-tokens", "30", "--dtype", dtype)
    assert code == 0, err
    assert printed == expected + "\n\n", family


def test_the_server_chat_endpoints_use_the_template(
    published: tuple[str, Any, Any, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    httpx = pytest.importorskip("httpx")
    from llm_eval.server import create_app, load_runner, start_server
    from llm_model import generate

    family, _, tokenizer, directory = published
    if tokenizer.chat_template is None:
        pytest.skip(f"{family}: no chat template")
    out = tmp_path / "ckpt"
    assert run(capsys, "import-hf", str(directory), "--out", str(out))[0] == 0
    runner = load_runner(out)
    message = [{"role": "user", "content": "Hello world!"}]
    ids = tokenizer.apply_chat_template(message, add_generation_prompt=True, tokenize=True, return_dict=False)
    assert runner.encode_chat(message) == list(ids) and runner.chat_stop == ()
    server = start_server(create_app(runner), "127.0.0.1", 0)
    try:
        body = {"model": out.name, "messages": message, "max_tokens": 12, "temperature": 0}
        reply = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30).json()
        new = generate(runner.model, list(ids), 12, eos_id=list(runner.eos_ids))[len(ids) :].tolist()
        new = [t for t in new if t not in runner.eos_ids]
        expected = runner.tokenizer.decode(new)
        assert reply["choices"][0]["message"]["content"] == expected
        if family == "mistral":  # the template refuses two user turns in a row: a 400 naming it
            bad = {**body, "messages": message + message}
            answer = httpx.post(f"{server.url}/v1/chat/completions", json=bad, timeout=30)
            assert answer.status_code == 400 and "roles must alternate" in answer.json()["error"]["message"]
    finally:
        server.stop()


def test_gpt2_with_openais_own_bpe_keeps_the_offline_tiktoken_tokenizer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    from llm_data.gpt2 import offline_gpt2_files

    files = offline_gpt2_files()
    if files is None:
        pytest.skip("GPT-2 BPE files not installed (llm-data[gpt2-offline])")
    backend = Tokenizer(models.BPE.from_file(str(files["encoder.json"]), str(files["vocab.bpe"])))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(["<|endoftext|>"])
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_positions=64, n_embd=32, n_layer=2, n_head=4, initializer_range=INIT)
    model = transformers.GPT2LMHeadModel(config).to(torch.bfloat16)
    directory = tmp_path / "gpt2"
    model.save_pretrained(directory, max_shard_size="2MB")
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>")
    tokenizer.save_pretrained(directory)
    capsys.readouterr()
    assert run(capsys, "import-hf", str(directory), "--out", str(tmp_path / "out"))[0] == 0
    assert json.loads((tmp_path / "out" / "config.json").read_text())["tokenizer"] == "gpt2"
    assert not (tmp_path / "out" / "tokenizer.json").exists()
    inputs = tokenizer(PROMPT, return_tensors="pt")
    with torch.no_grad():
        new = reference_model(directory, torch.bfloat16).generate(
            **inputs, max_new_tokens=12, do_sample=False, pad_token_id=0
        )[0, inputs["input_ids"].shape[1] :]
    code, printed, err = run(capsys, "generate", str(tmp_path / "out"), PROMPT, "--max-new-tokens", "12")
    assert code == 0, err
    assert printed == PROMPT + tokenizer.decode(new, skip_special_tokens=True) + "\n"
