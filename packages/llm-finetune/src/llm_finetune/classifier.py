"""Classification finetuning (the book's chapter 6): a causal LM becomes a text classifier.

The output head ``Linear(emb_dim, vocab_size)`` is replaced by ``Linear(emb_dim,
num_classes)`` (:mod:`llm_finetune.heads`); the class logits are read at each row's
**last real token** (rows are right-padded, and causal attention means the padding
after it changes nothing, so a padded row is classified exactly like the same text
alone). :func:`finetune_classifier` runs the recipe path (:mod:`llm_finetune.recipe`)
with :class:`ClassificationTask`; accuracy is logged beside the losses in
``metrics.jsonl``, and the finished run is evaluated on every split (``eval.json``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llm_core.errors import ConfigError, DataError
from llm_data.labels import confusion_matrix
from llm_finetune.checkpoints import BaseModel, FinetunedModel
from llm_finetune.config import ClassifyConfig
from llm_finetune.heads import HEAD, last_token_logits, to_classifier
from llm_finetune.recipe import Echo, FinetuneRun, Recipe, run_recipe
from llm_finetune.tasks import FinetuneTask
from llm_model import model_config

__all__ = [
    "ClassificationDataset",
    "ClassificationRecipe",
    "ClassificationTask",
    "ClassifierRun",
    "calc_accuracy_loader",
    "calc_loss_loader",
    "classify_texts",
    "collate_classification",
    "confusion_matrix",
    "evaluate_classifier",
    "finetune_classifier",
    "load_classification_data",
    "load_classification_file",
]

Batch = tuple[torch.Tensor, ...]


# -- data ----------------------------------------------------------------------------
def _label_names_and_ids(
    raw: Sequence[Any], where: Sequence[str], labels: Sequence[str] | None
) -> tuple[list[int], list[str]]:
    names = list(labels) if labels else sorted({str(r) for r in raw})
    index = {name: i for i, name in enumerate(names)}
    ids = []
    for value, place in zip(raw, where, strict=True):
        if str(value) not in index:
            raise DataError(
                f"{place}: label {value!r} is not one of {', '.join(names)}; fix the row or --labels"
            )
        ids.append(index[str(value)])
    return ids, names


def load_classification_file(
    path: str | os.PathLike[str], labels: Sequence[str] | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """Records ``{"text", "label": int}`` and the label names from a file.

    ``.json`` (a list of ``{"text", "label"}`` objects) or ``.jsonl`` (one per line);
    anything else is read as ``label<TAB>text`` lines (the SMS spam file's format).
    ``labels`` fixes the names and their order; a label outside them, a missing field
    or a line without a tab raises :class:`DataError` naming ``file:line`` (``file:#index``
    for JSON).
    """
    from llm_data import read_text_file

    path = Path(path)
    text = read_text_file(path)
    raw_labels, texts, places = [], [], []
    if path.suffix in {".json", ".jsonl"}:
        if path.suffix == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
            if not isinstance(data, list):
                raise DataError(f"{path}: expected a JSON list of {{text, label}} records")
            items = [(f"{path}:#{i}", r) for i, r in enumerate(data)]
        else:
            items = []
            for number, line in enumerate(text.splitlines(), start=1):
                if line.strip():
                    try:
                        items.append((f"{path}:{number}", json.loads(line)))
                    except json.JSONDecodeError as exc:
                        raise DataError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
        for place, record in items:
            missing = [k for k in ("text", "label") if not isinstance(record, dict) or k not in record]
            if missing:
                raise DataError(f"{place}: record lacks {', '.join(missing)}; expected {{text, label}}")
            raw_labels.append(record["label"])
            texts.append(str(record["text"]))
            places.append(place)
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            label, sep, body = line.partition("\t")
            if not sep:
                raise DataError(f"{path}:{number}: expected 'label<TAB>text', found no tab: {line[:60]!r}")
            raw_labels.append(label)
            texts.append(body)
            places.append(f"{path}:{number}")
    if not texts:
        raise DataError(f"{path}: no records; expected 'label<TAB>text' lines or {{text, label}} records")
    ids, names = _label_names_and_ids(raw_labels, places, labels)
    if len(names) < 2:
        raise DataError(f"{path}: found one label ({names[0]}); a classifier needs at least two")
    return [{"text": t, "label": i} for t, i in zip(texts, ids, strict=True)], names


def _balance(records: list[dict[str, Any]], num_classes: int, seed: int) -> list[dict[str, Any]]:
    """Undersample every class to the smallest one (the book balances ham to the spam count)."""
    import random

    groups = [[r for r in records if r["label"] == c] for c in range(num_classes)]
    smallest = min(len(g) for g in groups)
    if smallest == 0:
        raise DataError(f"cannot balance: class sizes {[len(g) for g in groups]}; every class needs rows")
    rng = random.Random(seed)
    return [r for g in groups for r in (g if len(g) == smallest else rng.sample(g, smallest))]


def load_classification_data(
    data: str,
    *,
    root: str | os.PathLike[str] | None = None,
    labels: Sequence[str] | None = None,
    balance: bool = True,
    seed: int = 123,
) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """``({"train", "val", "test"}, label names)`` from a registered dataset name or a file.

    ``sms-spam`` gives the book's balanced 70/10/20 split with labels ``ham``/``spam``
    (``root``: the directory holding ``SMSSpamCollection``). A file is read with
    :func:`load_classification_file`, balanced (optional) and split 70/10/20 like the book.
    """
    from llm_core import get_registry
    from llm_data.sms_spam import LABELS, random_split

    path = Path(data)
    if path.is_file():
        records, names = load_classification_file(path, labels)
        if balance:
            records = _balance(records, len(names), seed)
        return random_split(records, 0.7, 0.1, seed), names
    registry = get_registry("datasets")
    if data not in registry:
        raise DataError(
            f"--data {data}: expected a file or a registered dataset ({', '.join(registry)}), found neither"
        )
    options: dict[str, Any] = {"seed": seed, "balanced": balance} if data == "sms-spam" else {}
    splits = registry[data].obj(Path(root) if root else None, **options)
    names = list(LABELS) if data == "sms-spam" else list(registry[data].meta.get("labels") or [])
    if not names:
        found = sorted({int(r["label"]) for split in splits.values() for r in split})
        names = [str(i) for i in range(max(found) + 1)]
    if labels and list(labels) != names:
        raise DataError(
            f"--data {data}: its labels are {', '.join(names)}, found --labels {', '.join(labels)}"
        )
    missing = [s for s in ("train", "val") if not splits.get(s)]
    if missing:
        raise DataError(f"--data {data}: expected train/val/test splits, found no {', '.join(missing)}")
    return {k: list(v) for k, v in splits.items()}, names


class ClassificationDataset(torch.utils.data.Dataset):
    """Token ids (truncated to ``max_length``) and class ids; items are ``(ids: list[int], label: int)``.

    Texts longer than ``max_length`` tokens are truncated (``truncated`` counts them),
    or raise :class:`DataError` with ``on_long="error"``. An empty text becomes one
    padding token.
    """

    def __init__(
        self,
        records: Sequence[dict[str, Any]],
        tokenizer: Any,
        *,
        max_length: int,
        num_classes: int,
        pad_token_id: int,
        on_long: str = "truncate",
        name: str = "data",
    ) -> None:
        if on_long not in ("truncate", "error"):
            raise ConfigError(f"on_long={on_long!r}: expected 'truncate' or 'error'")
        if not records:
            raise DataError(f"{name}: no records; expected at least one {{text, label}} record")
        self.items: list[tuple[list[int], int]] = []
        self.truncated = 0
        for index, record in enumerate(records):
            label = int(record["label"])
            if not 0 <= label < num_classes:
                raise DataError(f"{name}:#{index}: label {label} is outside 0..{num_classes - 1}")
            ids = list(tokenizer.encode(record["text"])) or [pad_token_id]
            if len(ids) > max_length:
                if on_long == "error":
                    raise DataError(
                        f"{name}:#{index}: {len(ids)} tokens, more than max_length={max_length}; "
                        "shorten the text or allow truncation (--on-long truncate)"
                    )
                self.truncated += 1
                ids = ids[:max_length]
            self.items.append((ids, label))
        self.pad_token_id = pad_token_id

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[list[int], int]:
        return self.items[index]


def collate_classification(items: list[tuple[list[int], int]], pad_token_id: int) -> Batch:
    """Right-pad to the longest row: ``(ids (b, t), lengths (b,), labels (b,))``."""
    width = max(len(ids) for ids, _ in items)
    ids = torch.full((len(items), width), pad_token_id, dtype=torch.long)  # (b, t)
    for row, (tokens, _) in enumerate(items):
        ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    lengths = torch.tensor([len(t) for t, _ in items], dtype=torch.long)  # (b,)
    labels = torch.tensor([label for _, label in items], dtype=torch.long)  # (b,)
    return ids, lengths, labels


def _batches(dataset: ClassificationDataset, batch_size: int, num_batches: int | None) -> Iterable[Batch]:
    for count, start in enumerate(range(0, len(dataset), batch_size)):
        if num_batches is not None and count >= num_batches:
            return
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        yield collate_classification(items, dataset.pad_token_id)


@torch.no_grad()
def _predict(
    model: nn.Module, dataset: ClassificationDataset, batch_size: int, num_batches: int | None
) -> tuple[list[int], list[int], float]:
    """``(predictions, labels, summed loss)`` over the first ``num_batches`` batches (all when None)."""
    preds, gold, loss = [], [], 0.0
    for ids, lengths, labels in _batches(dataset, batch_size, num_batches):
        logits = last_token_logits(model, ids, lengths).float()  # (b, classes)
        labels = labels.to(logits.device)
        loss += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
        preds += logits.argmax(dim=-1).tolist()
        gold += labels.tolist()
    return preds, gold, loss


def calc_accuracy_loader(
    model: nn.Module, dataset: ClassificationDataset, batch_size: int = 8, num_batches: int | None = None
) -> float:
    """Fraction of correct predictions (the book's ``calc_accuracy_loader``)."""
    preds, gold, _ = _predict(model, dataset, batch_size, num_batches)
    return sum(p == y for p, y in zip(preds, gold, strict=True)) / max(1, len(gold))


def calc_loss_loader(
    model: nn.Module, dataset: ClassificationDataset, batch_size: int = 8, num_batches: int | None = None
) -> float:
    """Mean cross-entropy of the last-token class logits."""
    preds, _, loss = _predict(model, dataset, batch_size, num_batches)
    return loss / max(1, len(preds))


def evaluate_classifier(
    model: nn.Module, dataset: ClassificationDataset, label_names: Sequence[str], *, batch_size: int = 8
) -> dict[str, Any]:
    """Accuracy, loss and confusion matrix (rows: true label, columns: predicted) over a whole dataset."""
    was_training = model.training
    model.eval()
    try:
        preds, gold, loss = _predict(model, dataset, batch_size, None)
    finally:
        model.train(was_training)
    correct = sum(p == y for p, y in zip(preds, gold, strict=True))
    return {
        "examples": len(gold),
        "accuracy": correct / max(1, len(gold)),
        "loss": loss / max(1, len(gold)),
        "labels": list(label_names),
        "confusion_matrix": confusion_matrix(preds, gold, len(label_names)),
    }


@dataclass
class ClassificationTask(FinetuneTask):
    """The Trainer's task for classification: batches, loss, accuracy."""

    name = "classify"

    labels: list[str]

    def collate(self, items: list[tuple[list[int], int]]) -> Batch:
        return collate_classification(items, self.train.pad_token_id)

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        ids, lengths, labels = batch
        logits = last_token_logits(model, ids, lengths)  # (b, classes)
        return nn.functional.cross_entropy(logits.float(), labels.to(logits.device))

    def evaluate(self, model: nn.Module) -> dict[str, float | None]:
        result: dict[str, float | None] = {}
        for split, dataset in (("train", self.train), ("val", self.val)):
            preds, gold, loss = _predict(model, dataset, self.batch_size, self.eval_batches)
            result[f"{split}_loss"] = loss / max(1, len(gold))
            result[f"{split}_accuracy"] = sum(p == y for p, y in zip(preds, gold, strict=True)) / max(
                1, len(gold)
            )
        return result

    def tokens(self, batch: Batch) -> int:
        return int(batch[1].sum())


@torch.no_grad()
def classify_texts(
    classifier: FinetunedModel, tokenizer: Any, texts: Sequence[str], *, max_length: int | None = None
) -> list[dict[str, Any]]:
    """``[{"label", "probability", "probabilities"}]`` for each text.

    ``classifier`` is what :func:`~llm_finetune.checkpoints.load_finetuned` (or
    :func:`~llm_finetune.adapters.load_lora_adapters`) returns: the model and its labels.
    """
    model, info = classifier.model, classifier.info
    names = classifier.labels
    if not names:
        raise ConfigError(
            "expected a classifier checkpoint (config.json with finetune.labels), found a plain model; "
            "finetune one with `scratchlm finetune classify`"
        )
    limit = max_length or info.get("max_length") or model_config(model).context_length
    pad = int(info.get("pad_token_id", 0))
    items = [((list(tokenizer.encode(t)) or [pad])[:limit], 0) for t in texts]
    model.eval()
    ids, lengths, _ = collate_classification(items, pad)
    probs = torch.softmax(last_token_logits(model, ids, lengths).float(), dim=-1)  # (b, classes)
    out = []
    for row in probs.tolist():
        best = max(range(len(row)), key=row.__getitem__)
        out.append(
            {
                "label": names[best],
                "probability": row[best],
                "probabilities": dict(zip(names, row, strict=True)),
            }
        )
    return out


@dataclass
class ClassifierRun(FinetuneRun):
    """What :func:`finetune_classifier` made and measured (``reports``: per split, as ``eval.json``)."""

    labels: list[str]
    reports: dict[str, dict[str, Any]]
    truncated: int

    def summary(self) -> dict[str, Any]:
        """The run's JSON document, with ``<split>_accuracy`` at the top level."""
        accuracies = {f"{split}_accuracy": r["accuracy"] for split, r in self.reports.items()}
        return {**super().summary(), **accuracies}

    def lines(self) -> list[str]:
        """Accuracy per split, the test confusion matrix and how to use the classifier."""
        lines = [
            f"{split} accuracy: {r['accuracy'] * 100:.2f}% ({r['examples']} examples)"
            for split, r in self.reports.items()
        ]
        if "test" in self.reports:
            lines.append("test confusion matrix (rows: true, columns: predicted): " + ", ".join(self.labels))
            matrix = self.reports["test"]["confusion_matrix"]
            lines += [f"  {name:>10}: {row}" for name, row in zip(self.labels, matrix, strict=True)]
        return [
            *lines,
            f"classifier: {self.final_dir}",
            f'try: scratchlm classify {self.final_dir} "You won a prize! Call now"',
        ]


Splits = tuple[dict[str, list[dict[str, Any]]], list[str]]


class ClassificationRecipe(Recipe[ClassifyConfig, Splits, ClassifierRun]):
    """Chapter 6: a new head over the last token, trained on labelled texts, evaluated on every split."""

    command = "finetune classify"
    task = "classification"
    modules_to_save = (HEAD,)

    def __init__(self, echo: Callable[[str], None] = print) -> None:
        super().__init__(echo)
        self.datasets: dict[str, ClassificationDataset] = {}

    def load_data(self, config: ClassifyConfig) -> Splits:
        return load_classification_data(
            config.data, root=config.data_dir, labels=config.labels, balance=config.balance, seed=config.seed
        )

    def prepare(
        self, config: ClassifyConfig, base: BaseModel, data: Splits
    ) -> tuple[ClassifyConfig, ClassificationTask]:
        splits, names = data
        tok = base.tokenizer
        context = model_config(base.model).context_length
        length = min(config.max_length or context, context)
        pad = tok.eot_token if tok.eot_token is not None else 0
        self.datasets = {
            split: ClassificationDataset(
                records,
                tok,
                max_length=length,
                num_classes=len(names),
                pad_token_id=pad,
                on_long=config.on_long,
                name=f"{config.data} ({split})",
            )
            for split, records in splits.items()
            if records
        }
        empty = [split for split in ("train", "val") if split not in self.datasets]
        if empty:
            raise DataError(
                f"--data {config.data}: the {' and '.join(empty)} split(s) are empty; "
                "expected enough records for a 70/10/20 split (at least 10 per class)"
            )
        truncated = sum(d.truncated for d in self.datasets.values())
        if truncated:
            self.echo(f"note: {truncated} text(s) longer than {length} tokens were truncated")
        to_classifier(base.model, len(names))
        self.echo(f"labels: {', '.join(names)}")
        own = {"labels": list(names), "num_classes": len(names), "max_length": length, "pad_token_id": pad}
        task = ClassificationTask(
            **self.task_fields(config, base, **own),
            train=self.datasets["train"],
            val=self.datasets["val"],
            labels=list(names),
        )
        return dataclasses.replace(config, max_length=length), task

    def finish(self, run: FinetuneRun, model: nn.Module, base: BaseModel, data: Splits) -> ClassifierRun:
        from llm_core.config_io import write_json_atomic

        names = data[1]
        reports = {
            split: evaluate_classifier(model, dataset, names, batch_size=run.config.batch_size)
            for split, dataset in self.datasets.items()
        }
        write_json_atomic(run.run_dir / "eval.json", reports)
        truncated = sum(d.truncated for d in self.datasets.values())
        return ClassifierRun(**vars(run), labels=list(names), reports=reports, truncated=truncated)


def finetune_classifier(config: ClassifyConfig, *, echo: Echo = print, **flags: bool) -> ClassifierRun:
    """Finetune ``config.model`` (a checkpoint directory or a preset name) as a classifier on ``config.data``.

    The book's defaults (:class:`~llm_finetune.config.ClassifyConfig`): last transformer
    block + final norm + new head trainable, AdamW lr 5e-5, weight decay 0.1, batch 8,
    5 epochs. Writes the Trainer's run directory plus ``eval.json`` (train/val/test
    accuracy, loss, confusion matrices), ``loss.png`` and ``accuracy.png`` (with
    matplotlib) and, for LoRA, ``adapters.safetensors`` and ``merged/``.
    ``flags``: ``resume`` and ``overwrite`` of :func:`~llm_finetune.recipe.run_recipe`.
    """
    return run_recipe(ClassificationRecipe(echo), config, **flags)
