"""DPO: the loss's known values, response masks, data errors, and a margin that grows."""

from __future__ import annotations

import json
import math

import pytest
import torch

from llm_core.cli import main
from llm_core.errors import ConfigError, DataError
from llm_finetune.config import DPOConfig
from llm_finetune.dpo import (
    collate_preferences,
    dpo_loss,
    finetune_dpo,
    load_preference_file,
    response_logprobs,
)
from llm_model import build_model


def test_dpo_loss_is_log2_when_policy_equals_reference() -> None:
    logp = torch.tensor([-1.0, -2.0])
    loss, chosen, rejected = dpo_loss(logp, logp - 1, logp, logp - 1, beta=0.1)
    assert loss.item() == pytest.approx(math.log(2))
    assert chosen.item() == 0 and rejected.item() == 0


def test_dpo_loss_known_value() -> None:
    loss, chosen, rejected = dpo_loss(
        torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0]), beta=0.5
    )
    assert loss.item() == pytest.approx(-math.log(1 / (1 + math.exp(-0.5 * 2))))
    assert chosen.item() == 1.0 and rejected.item() == -1.0


def test_collate_masks_prompt_and_padding() -> None:
    chosen, chosen_mask, _, rejected_mask = collate_preferences(
        [([1, 2], [1, 2, 3, 4], [1, 2, 5]), ([1], [1, 6], [1, 7, 8, 9])], pad_token_id=0, max_length=10
    )
    assert chosen.tolist() == [[1, 2, 3, 4], [1, 6, 0, 0]]
    assert chosen_mask.tolist() == [[False, False, True, True], [False, True, False, False]]
    assert rejected_mask.tolist() == [[False, False, True, False], [False, True, True, True]]


def test_long_rows_lose_the_start_of_the_prompt_first() -> None:
    chosen, mask, _, _ = collate_preferences([([1, 2, 3, 4], [1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 7])], 0, 4)
    assert chosen.tolist() == [[3, 4, 5, 6]] and mask.tolist() == [[False, False, True, True]]
    chosen, mask, _, _ = collate_preferences([([1, 2], [1, 2, 3, 4, 5, 6], [1, 2, 7])], 0, 4)
    assert chosen.tolist() == [[2, 3, 4, 5]] and mask.tolist() == [[False, True, True, True]]


def test_response_logprobs_average_only_the_response() -> None:
    torch.manual_seed(0)
    model = build_model("gpt2", "tiny", vocab_size=20, context_length=8).eval()
    ids = torch.tensor([[1, 2, 3, 4]])
    mask = torch.tensor([[False, False, True, True]])
    logp = torch.log_softmax(model(ids)[0], dim=-1)
    expected = (logp[1, 3] + logp[2, 4]) / 2
    torch.testing.assert_close(response_logprobs(model, ids, mask)[0], expected)


def test_a_record_missing_a_field_names_file_and_index(tmp_path) -> None:
    path = tmp_path / "prefs.json"
    good = {"instruction": "a", "input": "", "chosen": "b", "rejected": "c"}
    path.write_text(json.dumps([good, good, {"instruction": "a", "chosen": "b"}]), encoding="utf-8")
    with pytest.raises(DataError, match=r"prefs\.json:#2: record lacks rejected"):
        load_preference_file(path)


def test_bad_beta_is_a_config_error(base_checkpoint, preference_slice, tmp_path) -> None:
    with pytest.raises(ConfigError, match="beta=0: expected a number > 0"):
        DPOConfig(model=base_checkpoint, data=preference_slice, out=tmp_path / "x", beta=0)


def test_the_reward_margin_grows(byte_checkpoint, preference_slice, tmp_path, quiet) -> None:
    config = DPOConfig(model=byte_checkpoint, data=preference_slice, out=tmp_path / "dpo", max_steps=8,
                       batch_size=4, lr=1e-3, eval_every=8, eval_batches=1, **quiet)  # fmt: skip
    run = finetune_dpo(config, echo=lambda _: None)
    evals = [
        r
        for r in map(json.loads, (run.run_dir / "metrics.jsonl").read_text().splitlines())
        if r["kind"] == "eval"
    ]
    assert evals[0]["train_reward_margin"] == pytest.approx(0, abs=1e-6)  # policy == reference at step 0
    assert evals[-1]["train_reward_margin"] > evals[0]["train_reward_margin"] + 0.05
    assert evals[-1]["train_loss"] < math.log(2)
    config = json.loads((run.final_dir / "config.json").read_text())
    assert config["finetune"]["task"] == "dpo" and config["finetune"]["beta"] == 0.1


def test_cli_dpo_runs(byte_checkpoint, preference_slice, tmp_path, capsys) -> None:
    code = main(
        ["finetune", "dpo", str(byte_checkpoint), "--data", str(preference_slice),
         "--out", str(tmp_path / "dpo"), "--max-steps", "2", "--batch-size", "2", "--eval-every", "1",
         "--eval-batches", "1", "--no-progress"]
    )  # fmt: skip
    assert code == 0
    assert "val reward margin:" in capsys.readouterr().out


def test_dpo_on_an_sft_checkpoint_keeps_its_template(
    byte_checkpoint, instruction_slice, preference_slice, tmp_path, quiet
):
    from llm_finetune.config import InstructConfig
    from llm_finetune.instruct import finetune_instructions

    quiet = dict(quiet, eval_every=0, batch_size=2, max_steps=1)
    sft = finetune_instructions(
        InstructConfig(model=byte_checkpoint, data=instruction_slice, out=tmp_path / "sft", template="llama",
                       trainable="lora", test_limit=0, **quiet),
        echo=lambda _: None,
    )  # fmt: skip
    dpo = DPOConfig(model=sft.final_dir, data=preference_slice, out=tmp_path / "dpo", **quiet)
    run = finetune_dpo(dpo, echo=lambda _: None)
    config = json.loads((run.final_dir / "config.json").read_text())
    assert config["finetune"]["template"] == "llama" and config["finetune"]["lora"] is None
    assert config["tokenizer"] == "bpe"
