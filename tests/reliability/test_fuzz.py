"""The fuzz targets in ``fuzz/``: a few hundred mutated inputs in CI, 60 s of atheris each nightly.

In CI each target's ``TestOneInput`` runs on its seeds and 300 (nightly: 3000) seeded random
mutations of them — no atheris needed, so the targets cannot rot. Nightly
(``SCRATCHLM_NIGHTLY=1``) each target also runs under atheris, coverage-guided, for
``SCRATCHLM_FUZZ_SECONDS`` (default 60) seconds; a crash fails the test and the crashing
input is kept in the test's temporary directory.
"""

from __future__ import annotations

import importlib.util
import os
import random
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

FUZZ = Path(__file__).resolve().parent / "fuzz"
TARGETS = sorted(p.stem for p in FUZZ.glob("fuzz_*.py"))


def load_target(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"scratchlm_{name}", FUZZ / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to four random edits: flip a bit, set a byte, delete, insert, duplicate or truncate."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        position = rng.randrange(len(out) + 1)
        edit = rng.randrange(6)
        if edit == 0 and out:
            out[min(position, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif edit == 1 and out:
            out[min(position, len(out) - 1)] = rng.randrange(256)
        elif edit == 2:
            del out[position : position + rng.randint(1, 16)]
        elif edit == 3:
            out[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif edit == 4:
            out[position:position] = out[position : position + rng.randint(1, 32)]
        else:
            del out[position:]
    return bytes(out)


@pytest.mark.parametrize("name", TARGETS)
def test_target_survives_seeds_and_mutations(name: str, tmp_path: Path, nightly: bool, figures: dict) -> None:
    target = load_target(name)
    target.setup(tmp_path)
    seeds = target.seeds()
    rng = random.Random(name)
    inputs = seeds + [mutate(rng.choice(seeds), rng) for _ in range(3000 if nightly else 300)]
    for data in inputs:
        try:
            target.TestOneInput(data)
        except Exception as exc:
            (tmp_path / "crash.bin").write_bytes(data)
            raise AssertionError(f"{name} crashed on {data[:80]!r}… (saved in {tmp_path}/crash.bin)") from exc
    figures[f"fuzz {name} (mutations)"].update(inputs=len(inputs))


@pytest.mark.parametrize("name", TARGETS)
def test_target_under_atheris(name: str, tmp_path: Path, nightly: bool, figures: dict) -> None:
    if not nightly:
        pytest.skip("atheris runs nightly (SCRATCHLM_NIGHTLY=1)")
    pytest.importorskip("atheris", reason="pip install atheris (nox -s reliability_nightly does)")
    seconds = int(os.environ.get("SCRATCHLM_FUZZ_SECONDS", "60"))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    target = load_target(name)
    target.setup(tmp_path / "work")
    for i, seed in enumerate(target.seeds()):
        (corpus / f"seed-{i}").write_bytes(seed)
    result = subprocess.run(
        [
            sys.executable,
            str(FUZZ / f"{name}.py"),
            f"-max_total_time={seconds}",
            "-rss_limit_mb=4096",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=seconds + 300,
    )
    runs = re.findall(r"Done (\d+) runs", result.stderr)
    figures[f"fuzz {name} (atheris)"].update(
        seconds=seconds, inputs=int(runs[-1]) if runs else 0, corpus=len(list(corpus.iterdir()))
    )
    assert result.returncode == 0, result.stderr[-3000:]
