"""Config files and dataclass configs: only ConfigError, never another exception."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_core import CheckpointError, ConfigError
from llm_core.config_io import (
    check_keys,
    config_from_dict,
    config_to_dict,
    json_digest,
    load_config_file,
    parse_override,
    sha256_file,
    write_json_atomic,
)


@dataclass
class Inner:
    size: int = 4


@dataclass
class Example:
    lr: float = 1e-3
    steps: int = 10
    name: str = "run"
    schedule: Literal["constant", "cosine"] = "constant"
    seed: Optional[int] = None
    layers: list[int] = field(default_factory=lambda: [1, 2])
    inner: Inner = field(default_factory=Inner)

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"lr={self.lr} must be > 0")


def test_round_trip_json_and_toml(tmp_path: Path) -> None:
    config = Example(lr=3, steps=5, seed=1, inner=Inner(8))
    write_json_atomic(tmp_path / "c.json", config_to_dict(config))
    assert config_from_dict(Example, load_config_file(tmp_path / "c.json")) == config
    (tmp_path / "c.toml").write_text('lr = 0.5\nschedule = "cosine"\n[inner]\nsize = 2\n')
    loaded = config_from_dict(Example, load_config_file(tmp_path / "c.toml"))
    assert loaded == Example(lr=0.5, schedule="cosine", inner=Inner(2))
    for name, text in (("n.json", '{"lr": NaN}'), ("n.toml", "lr = inf")):  # both formats parse these
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError, match="expected a finite number"):
            config_from_dict(Example, load_config_file(tmp_path / name))
    assert isinstance(config_from_dict(Example, {"lr": 2}).lr, float)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"lrr": 1}, "unknown key(s) 'lrr'; valid keys: inner, layers, lr"),
        ({"steps": "ten"}, "'steps': expected an integer, got 'ten'"),
        ({"steps": True}, "'steps': expected an integer"),
        ({"schedule": "linear"}, "expected one of 'constant', 'cosine'"),
        ({"inner": {"size": 1.5}}, "'size': expected an integer"),
        ({"inner": 3}, "expected a table/object"),
        ({"lr": -1}, "lr=-1.0 must be > 0"),
        ({"layers": "1,2"}, "expected a list"),
        ({"lr": float("nan")}, "'lr': expected a finite number, got nan"),
        ({"lr": float("inf")}, "'lr': expected a finite number, got inf"),
    ],
)
def test_bad_values_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(Example, data, source="run.json")
    assert message in str(info.value)
    assert str(info.value).startswith("run.json")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("c.json", b"{", "invalid JSON"),
        ("c.toml", b"lr = = 1", "invalid TOML"),
        ("c.json", b"[1, 2]", "expected a table/object at the top level, got list"),
        ("c.json", b"\xff\xfe{}", "not UTF-8"),
        ("c.yaml", b"lr: 1", "expected a .json or .toml file"),
    ],
)
def test_malformed_files(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        load_config_file(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config_file(tmp_path / "absent.json")


def test_parse_override() -> None:
    assert parse_override("lr=3e-4") == ("lr", 3e-4)
    assert parse_override("name=my run") == ("name", "my run")
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_override("lr")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["lr", "steps", "name", "schedule", "seed", "layers", "inner", "x"]), json_values
    )
)
def test_arbitrary_json_only_raises_config_error(data: dict) -> None:
    with contextlib.suppress(ConfigError):
        config_from_dict(Example, data)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_only_raise_config_error(
    tmp_path_factory: pytest.TempPathFactory, content: bytes
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "c.toml"
    path.write_bytes(content)
    with contextlib.suppress(ConfigError):
        load_config_file(path)


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "a" / "s.json", {"step": 1})
    write_json_atomic(tmp_path / "a" / "s.json", {"step": 2})
    assert json.loads((tmp_path / "a" / "s.json").read_text()) == {"step": 2}
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["s.json"]


def test_check_keys_accepts_exact_and_optional_keys() -> None:
    check_keys({"a": 1, "b": 2}, required={"a"}, optional={"b", "c"}, source="f.json")


def test_check_keys_names_a_misspelled_key_and_what_it_should_be() -> None:
    with pytest.raises(CheckpointError) as info:
        check_keys(
            {"fmrmat_version": 2, "step": 1},
            required={"format_version", "step"},
            source="trainer_state.json",
            error=CheckpointError,
        )
    message = str(info.value)
    assert message.startswith("trainer_state.json: ")
    assert "unknown key 'fmrmat_version' (did you mean 'format_version'?)" in message
    assert "missing key 'format_version'" in message


def test_check_keys_lists_every_unknown_key() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'x'.*unknown key 'y'.*expected keys: a"):
        check_keys({"a": 1, "x": 1, "y": 2}, required={"a"}, source="c")


def test_sha256_file_reads_in_blocks_and_matches_hashlib(tmp_path: Path) -> None:
    import hashlib

    data = bytes(range(256)) * 20_000  # over one 4 MiB block
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_json_digest_leaves_its_own_key_out_and_ignores_key_order() -> None:
    digest = json_digest({"b": 1, "a": [1, 2]})
    assert json_digest({"a": [1, 2], "b": 1, "sha256": digest}) == digest
    assert json_digest({"a": [1, 2], "b": 2}) != digest
    assert json_digest({"a": [1, 2], "b": 1, "check": "x"}, without="check") == digest
