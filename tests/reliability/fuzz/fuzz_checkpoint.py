"""Fuzz target: loading checkpoints (safetensors weights, config.json, trainer state, optimizer state).

The first byte of an input picks the file, the rest is its content, placed in an otherwise
valid checkpoint of a tiny GPT-2:

0. ``model.safetensors`` of a model checkpoint, loaded by ``load_pretrained`` with
   ``verify=False`` (the sha256 that config.json records would stop almost every input before
   the parsers; an attacker can rewrite it too);
1. its ``config.json``, loaded the same way (inputs asking for a model of more than 4096 units
   in any size are skipped: building it would only measure the machine's memory — a known
   limit, see docs/reliability.md);
2. ``trainer_state.json`` of a training checkpoint, loaded by ``load_training_checkpoint``;
3. ``optimizer.safetensors`` of a training checkpoint, with its sha256 in the trainer state
   and the state's own sha256 updated (as an attacker would), so the safetensors parser and
   the optimizer-state reader themselves are reached.

A typed scratchlm error or a loaded model is fine; anything else is a crash. Run with
atheris (nightly)::

    python tests/reliability/fuzz/fuzz_checkpoint.py -max_total_time=60 CORPUS_DIR
"""

from __future__ import annotations

import atexit
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

INSTRUMENTED = ["llm_core", "llm_model", "llm_train", "safetensors"]
_work: Path | None = None
LIMIT = 4096


def setup(workdir: Path | None = None) -> Path:
    """Create a tiny model checkpoint and a training checkpoint once (returns the directory)."""
    global _work
    if _work is not None:
        return _work
    import torch

    from llm_model import build_model, save_pretrained
    from llm_train.checkpoint import save_training_checkpoint

    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="scratchlm-fuzz-"))
        atexit.register(shutil.rmtree, workdir, True)
    workdir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = build_model("gpt2", vocab_size=16, context_length=8, emb_dim=8, n_heads=2, n_layers=1)
    save_pretrained(model, workdir / "model")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.zeros(1, 4, dtype=torch.long)).sum().backward()
    optimizer.step()
    from llm_train.checkpoint import capture_rng_state

    state = {  # every key a Trainer writes, so the fuzzed state reaches the parsers behind the key check
        "step": 1, "tokens_seen": 4, "examples_seen": 1, "best_val": None, "last_val": None,
        "initial_val": None, "elapsed_s": 0.5, "rng": capture_rng_state(), "data": {}, "world_size": 1,
        "config": {},
    }  # fmt: skip
    save_training_checkpoint(workdir, "training", model, optimizer, state)
    _work = workdir
    return workdir


def seeds() -> list[bytes]:
    work = setup()
    return [
        b"\x00" + (work / "model" / "model.safetensors").read_bytes(),
        b"\x01" + (work / "model" / "config.json").read_bytes(),
        b"\x02" + (work / "training" / "trainer_state.json").read_bytes(),
        b"\x03" + (work / "training" / "optimizer.safetensors").read_bytes(),
    ]


def _too_big(payload: bytes) -> bool:
    """True when config.json asks for sizes above LIMIT (or is too deep to check)."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return False
    if not isinstance(data, dict):
        return False
    return any(isinstance(v, int) and not isinstance(v, bool) and v > LIMIT for v in data.values())


def _fresh(work: Path, name: str) -> Path:
    target = work / f"fuzzed-{name}"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(work / name, target)
    return target


def TestOneInput(data: bytes) -> None:
    """Load a checkpoint with one file replaced by the input; raise on anything but a typed error."""
    from llm_core.errors import ScratchLMError
    from llm_model import load_pretrained
    from llm_train.checkpoint import _state_digest, load_training_checkpoint

    if not data:
        return
    work = setup()
    kind, payload = data[0] % 4, data[1:]
    if kind in (0, 1):
        if kind == 1 and _too_big(payload):
            return
        directory = _fresh(work, "model")
        (directory / ("model.safetensors" if kind == 0 else "config.json")).write_bytes(payload)
        try:
            model: Any = load_pretrained(directory, verify=False)
        except ScratchLMError:
            return
        assert model.config.vocab_size > 0
        return
    directory = _fresh(work, "training")
    if kind == 2:
        (directory / "trainer_state.json").write_bytes(payload)
    else:
        (directory / "optimizer.safetensors").write_bytes(payload)
        state = json.loads((directory / "trainer_state.json").read_text(encoding="utf-8"))
        state["files"]["optimizer.safetensors"] = hashlib.sha256(payload).hexdigest()
        state["sha256"] = _state_digest(state)
        (directory / "trainer_state.json").write_text(json.dumps(state), encoding="utf-8")
    try:
        load_training_checkpoint(directory)
    except ScratchLMError:
        return


def main() -> None:
    import atheris
    import torch  # noqa: F401 - imported before instrumentation: torch itself is not fuzzed

    with atheris.instrument_imports(include=INSTRUMENTED):
        import llm_model.checkpoint  # noqa: F401
        import llm_train.checkpoint  # noqa: F401
    setup()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
