"""Classification finetuning: last-token logits, freezing, data errors, the Trainer run, the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from llm_core.cli import main
from llm_core.errors import CheckpointError, ConfigError, DataError
from llm_finetune.checkpoints import load_base, load_finetuned, set_trainable
from llm_finetune.classifier import (
    ClassificationDataset,
    classify_texts,
    collate_classification,
    confusion_matrix,
    finetune_classifier,
    load_classification_data,
    load_classification_file,
)
from llm_finetune.config import ClassifyConfig
from llm_finetune.heads import last_token_logits, to_classifier
from llm_model import build_model


@pytest.fixture
def classifier() -> torch.nn.Module:
    torch.manual_seed(3)
    return to_classifier(build_model("gpt2", "tiny", vocab_size=101, context_length=32), 3).eval()


def test_padded_rows_are_classified_like_the_text_alone(classifier) -> None:
    short, long = [5, 6, 7], [8, 9, 10, 11, 12, 13]
    ids, lengths, _ = collate_classification([(short, 0), (long, 1)], pad_token_id=100)
    assert ids.shape == (2, 6) and lengths.tolist() == [3, 6]
    batch = last_token_logits(classifier, ids, lengths)  # (2, 3)
    alone = classifier(torch.tensor([short]))[0, -1]
    torch.testing.assert_close(batch[0], alone, rtol=1e-5, atol=1e-5)
    assert batch.shape == (2, 3)


def test_to_classifier_replaces_the_head(classifier) -> None:
    assert classifier.out_head.weight.shape == (3, 64)
    assert classifier(torch.tensor([[1, 2]])).shape == (1, 2, 3)
    with pytest.raises(ConfigError, match="num_classes"):
        to_classifier(classifier, 1)


@pytest.mark.parametrize(
    ("trainable", "prefixes"),
    [
        ("head", ("out_head.",)),
        ("last-block", ("out_head.", "final_norm.", "trf_blocks.1.")),
        ("all", ("",)),
    ],
)
def test_set_trainable_freezes_the_rest(classifier, trainable, prefixes) -> None:
    names = set_trainable(classifier, trainable)
    expected = [n for n, _ in classifier.named_parameters() if n.startswith(prefixes)]
    assert names == expected and names


def test_set_trainable_lora_keeps_the_new_head_trainable(classifier) -> None:
    names = set_trainable(classifier, "lora", modules_to_save=["out_head"])
    assert "out_head.weight" in names and "trf_blocks.0.att.W_query.lora.A" in names
    assert "tok_emb.weight" not in names
    with pytest.raises(ConfigError, match="expected one of head, last-block, all, lora"):
        set_trainable(classifier, "everything")


def test_confusion_matrix_counts_true_rows_predicted_columns() -> None:
    assert confusion_matrix([0, 1, 1, 0, 1], [0, 1, 0, 0, 1], 2) == [[2, 1], [0, 2]]


def test_a_label_outside_the_known_set_names_file_and_line(tmp_path) -> None:
    path = tmp_path / "data.tsv"
    path.write_text("ham\thello\nspam\twin\nspma\toops\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"data\.tsv:3: label 'spma' is not one of ham, spam"):
        load_classification_file(path, ["ham", "spam"])
    records, names = load_classification_file(path)
    assert names == ["ham", "spam", "spma"] and records[2] == {"text": "oops", "label": 2}


def test_a_line_without_a_tab_names_file_and_line(tmp_path) -> None:
    path = tmp_path / "data.tsv"
    path.write_text("ham\thello\nspam win\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"data\.tsv:2: expected 'label<TAB>text'"):
        load_classification_file(path)


def test_a_json_record_missing_a_field_names_its_index(tmp_path) -> None:
    path = tmp_path / "data.json"
    path.write_text(json.dumps([{"text": "a", "label": "x"}, {"text": "b"}]), encoding="utf-8")
    with pytest.raises(DataError, match=r"data\.json:#1: record lacks label"):
        load_classification_file(path)


def test_long_texts_are_truncated_and_counted_or_refused() -> None:
    class Chars:
        def encode(self, text: str) -> list[int]:
            return [ord(c) % 50 for c in text]

    records = [{"text": "x" * 40, "label": 0}, {"text": "short", "label": 1}]
    data = ClassificationDataset(records, Chars(), max_length=10, num_classes=2, pad_token_id=0)
    assert data.truncated == 1 and len(data[0][0]) == 10 and len(data[1][0]) == 5
    with pytest.raises(DataError, match=r"#0: 40 tokens, more than max_length=10"):
        ClassificationDataset(records, Chars(), max_length=10, num_classes=2, pad_token_id=0, on_long="error")


def test_registered_sms_spam_gives_the_book_split(scratchlm_test_data) -> None:
    splits, names = load_classification_data("sms-spam", root=scratchlm_test_data)
    assert names == ["ham", "spam"]
    assert [len(splits[s]) for s in ("train", "val", "test")] == [1045, 149, 300]


def test_unknown_data_lists_the_datasets() -> None:
    with pytest.raises(DataError, match="sms-spam"):
        load_classification_data("no-such-data")


def test_a_base_with_a_different_tokenizer_is_refused(base_checkpoint) -> None:
    with pytest.raises(CheckpointError, match="trained with tokenizer 'gpt2'"):
        load_base(base_checkpoint, tokenizer="bpe")


def test_a_base_smaller_than_the_tokenizer_is_refused(tmp_path) -> None:
    from llm_model import save_pretrained

    small = save_pretrained(build_model("gpt2", "tiny", vocab_size=300), tmp_path / "small")
    with pytest.raises(CheckpointError, match="vocab_size=300 but tokenizer 'gpt2' has 50257"):
        load_base(small)


def test_an_unknown_base_is_a_checkpoint_error(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="preset name"):
        load_base(str(tmp_path / "missing"))


def test_finetune_classifier_learns_and_reloads(base_checkpoint, spam_slice, tmp_path, quiet) -> None:
    config = ClassifyConfig(model=base_checkpoint, data=spam_slice, out=tmp_path / "run", trainable="all",
                            max_steps=30, lr=1e-3, max_length=32, eval_every=10, eval_batches=2,
                            **quiet)  # fmt: skip
    run = finetune_classifier(config, echo=lambda _: None)
    evals = [
        json.loads(line)
        for line in (run.run_dir / "metrics.jsonl").read_text().splitlines()
        if json.loads(line)["kind"] == "eval"
    ]
    assert [e["step"] for e in evals] == [0, 10, 20, 30]
    assert all({"train_accuracy", "val_accuracy", "train_loss", "val_loss"} <= set(e) for e in evals)
    assert run.reports["train"]["accuracy"] > 0.75  # balanced: chance is 0.5
    assert set(run.reports) == {"train", "val", "test"}
    assert sum(map(sum, run.reports["test"]["confusion_matrix"])) == run.reports["test"]["examples"]
    saved = json.loads((run.run_dir / "eval.json").read_text())
    assert saved["test"]["accuracy"] == run.reports["test"]["accuracy"]
    assert (run.run_dir / "accuracy.png").is_file() and (run.run_dir / "loss.png").is_file()
    config = json.loads((run.final_dir / "config.json").read_text())
    assert config["finetune"]["labels"] == ["ham", "spam"] and config["tokenizer"] == "gpt2"
    model = load_finetuned(run.final_dir)
    assert model.labels == ["ham", "spam"]
    from llm_data import get_tokenizer

    results = classify_texts(
        model, get_tokenizer("gpt2"), ["WINNER!! Claim your free prize now", "ok see you"]
    )
    assert {r["label"] for r in results} <= {"ham", "spam"}
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in results)


def test_cli_classify_with_lora_then_classify_text(base_checkpoint, spam_slice, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    code = main(
        ["finetune", "classify", str(base_checkpoint), "--data", str(spam_slice),
         "--out", str(out), "--trainable", "lora", "--lora-rank", "2", "--max-steps", "3",
         "--eval-every", "0", "--max-length", "24", "--no-progress", "--json"]
    )  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["steps"] == 3 and 0 <= report["test_accuracy"] <= 1
    per_block = 4 * 2 * (64 + 64) + 2 * 2 * (64 + 256)  # rank * (in + out): attention 4x, feed-forward 2x
    assert report["trainable_parameters"] == 2 * per_block + (64 * 2 + 2)  # + the new head
    assert main(["classify", str(out / "final"), "You won a free cruise! Call now", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["label"] in {"ham", "spam"} and 0.5 <= result["probability"] <= 1
    from llm_data import get_tokenizer
    from llm_finetune import load_lora_adapters

    onto_base = load_lora_adapters(load_finetuned(base_checkpoint).model, out / "adapters.safetensors")
    from_adapters = classify_texts(onto_base, get_tokenizer("gpt2"), ["You won a free cruise! Call now"])[0]
    assert from_adapters["label"] == result["label"]
    assert from_adapters["probability"] == pytest.approx(result["probability"], abs=1e-5)


def test_cli_reports_bad_input_as_one_line(base_checkpoint, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text("ham\tfine\nspam\tbuy\nmaybe\tthing\n", encoding="utf-8")
    code = main(
        ["finetune", "classify", str(base_checkpoint), "--data", str(bad), "--labels", "ham,spam",
         "--out", str(tmp_path / "run"), "--max-steps", "1"]
    )  # fmt: skip
    assert code == 2
    assert "bad.tsv:3: label 'maybe' is not one of ham, spam" in capsys.readouterr().err


def test_classify_refuses_a_plain_language_model(base_checkpoint, capsys) -> None:
    assert main(["classify", str(base_checkpoint), "hello"]) == 2
    assert "expected a classifier checkpoint" in capsys.readouterr().err


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(byte_checkpoint, tmp_path) -> None:
    from safetensors.torch import load_file

    data = tmp_path / "data.tsv"
    lines = [f"{label}\t{label} message number {i}" for i in range(12) for label in ("ham", "spam")]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    options = dict(
        model=byte_checkpoint, data=data, trainable="last-block", batch_size=4, lr=1e-3, max_length=24,
        eval_every=0, checkpoint_every=2, progress=False,
    )  # fmt: skip
    quiet = dict(echo=lambda _: None)
    straight = finetune_classifier(ClassifyConfig(out=tmp_path / "a", max_steps=4, **options), **quiet)
    finetune_classifier(ClassifyConfig(out=tmp_path / "b", max_steps=2, **options), **quiet)
    resumed = finetune_classifier(
        ClassifyConfig(out=tmp_path / "b", max_steps=4, **options), resume=True, **quiet
    )
    assert resumed.steps == 4
    a = load_file(str(straight.final_dir / "model.safetensors"))
    b = load_file(str(resumed.final_dir / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cli_classify_from_a_preset(spam_slice, tmp_path, capsys) -> None:
    out = tmp_path / "preset"
    code = main(
        ["finetune", "classify", "tiny", "--data", str(spam_slice), "--out", str(out),
         "--trainable", "head", "--max-steps", "1", "--eval-every", "0", "--max-length", "16",
         "--no-progress"]
    )  # fmt: skip
    assert code == 0
    assert "test accuracy:" in capsys.readouterr().out
    assert json.loads((out / "final" / "config.json").read_text())["finetune"]["base"] == "preset tiny"


def test_too_few_records_for_a_validation_split(base_checkpoint, tmp_path) -> None:
    path = tmp_path / "few.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="val split"):
        finetune_classifier(
            ClassifyConfig(model=base_checkpoint, data=path, out=tmp_path / "run", max_steps=1),
            echo=lambda _: None,
        )
