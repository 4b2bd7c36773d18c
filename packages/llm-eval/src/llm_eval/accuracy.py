"""Classification metrics: accuracy, per-class precision/recall/F1 and the confusion matrix.

The metric functions work on plain predictions and labels; :func:`evaluate_accuracy`
also runs a classifier (any callable mapping token ids ``(b, t)`` to class
logits ``(b, num_classes)`` or ``(b, t, num_classes)``, like the book's spam
classifier, whose last position is used) over labelled examples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from llm_core.errors import ConfigError, DataError
from llm_data.labels import confusion_matrix
from llm_eval.reports import evaluator

__all__ = ["classification_metrics", "confusion_matrix", "evaluate_accuracy", "predict_classes"]


def _labels_list(values: Any, what: str) -> list[int]:
    if hasattr(values, "tolist"):
        values = values.tolist()
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise DataError(f"{what}[{i}]: expected a class index (integer >= 0), found {v!r}")
        out.append(v)
    return out


def classification_metrics(
    predictions: Iterable[int],
    labels: Iterable[int],
    *,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support, macro averages and the confusion matrix.

    A class never predicted has precision 0, one with no example recall 0 (the
    scikit-learn ``zero_division=0`` convention). ``num_classes`` defaults to
    ``len(class_names)``, else the largest index seen + 1.
    """
    preds = _labels_list(predictions, "predictions")
    gold = _labels_list(labels, "labels")
    if len(preds) != len(gold):
        raise DataError(
            f"expected as many predictions as labels, found {len(preds)} predictions and {len(gold)} labels"
        )
    if not gold:
        raise DataError("expected at least one labelled example, found none")
    if num_classes is None:
        num_classes = len(class_names) if class_names else max(preds + gold) + 1
    if class_names is not None and len(class_names) != num_classes:
        raise ConfigError(f"class_names: expected {num_classes} names, got {len(class_names)}")
    too_big = [v for v in preds + gold if v >= num_classes]
    if too_big:
        raise DataError(
            f"class index {too_big[0]} is outside 0..{num_classes - 1} (num_classes={num_classes})"
        )
    names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
    matrix = confusion_matrix(preds, gold, num_classes)
    per_class = {}
    for c, name in enumerate(names):
        tp = matrix[c][c]
        predicted = sum(matrix[r][c] for r in range(num_classes))
        support = sum(matrix[c])
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    correct = sum(matrix[c][c] for c in range(num_classes))
    return {
        "accuracy": correct / len(gold),
        "examples": len(gold),
        "per_class": per_class,
        "macro_precision": sum(m["precision"] for m in per_class.values()) / num_classes,
        "macro_recall": sum(m["recall"] for m in per_class.values()) / num_classes,
        "macro_f1": sum(m["f1"] for m in per_class.values()) / num_classes,
        "confusion_matrix": matrix,
        "class_names": names,
    }


def predict_classes(
    classifier: Callable[[Any], Any], examples: Iterable[tuple[Sequence[int], int]], *, batch_size: int = 8
) -> tuple[list[int], list[int]]:
    """Run ``classifier`` over ``(token_ids, label)`` examples; return ``(predictions, labels)``.

    Examples of a batch are right-padded with their last token to a common
    length and the logits are read at each example's own last real position.
    """
    import torch

    preds: list[int] = []
    gold: list[int] = []
    batch: list[tuple[list[int], int]] = []

    def flush() -> None:
        width = max(len(ids) for ids, _ in batch)
        x = torch.tensor([ids + [ids[-1]] * (width - len(ids)) for ids, _ in batch])  # (b, width)
        parameters = getattr(classifier, "parameters", None)
        first = next(iter(parameters()), None) if callable(parameters) else None
        device = first.device if first is not None else x.device
        with torch.no_grad():
            logits = classifier(x.to(device))
        if logits.dim() == 3:  # (b, t, classes): the last real position of each row
            last = torch.tensor([len(ids) - 1 for ids, _ in batch], device=logits.device)
            logits = logits[torch.arange(len(batch), device=logits.device), last]  # (b, classes)
        if logits.dim() != 2 or logits.shape[0] != len(batch):
            raise ConfigError(
                f"classifier: expected logits of shape (batch, classes) or (batch, seq, classes), "
                f"got {tuple(logits.shape)}"
            )
        preds.extend(logits.argmax(dim=-1).tolist())
        gold.extend(label for _, label in batch)
        batch.clear()

    for number, (ids, label) in enumerate(examples):
        ids = [int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids)]
        if not ids:
            raise DataError(f"example #{number}: expected at least one token id, found none")
        batch.append((ids, int(label)))
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return preds, gold


@evaluator(
    "accuracy",
    keys=[
        "accuracy",
        "examples",
        "per_class",
        "macro_precision",
        "macro_recall",
        "macro_f1",
        "confusion_matrix",
        "class_names",
    ],
)
def evaluate_accuracy(
    classifier: Callable[[Any], Any] | None = None,
    examples: Iterable[tuple[Sequence[int], int]] | None = None,
    *,
    predictions: Sequence[int] | None = None,
    labels: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    num_classes: int | None = None,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Classification report from a ``classifier`` over ``examples``, or from ``predictions`` + ``labels``."""
    if classifier is not None and examples is not None:
        predictions, labels = predict_classes(classifier, examples, batch_size=batch_size)
    elif predictions is None or labels is None:
        raise ConfigError(
            "accuracy: expected a classifier and examples, or predictions and labels; "
            "pass --predictions [..] --labels [..] on the command line"
        )
    report = classification_metrics(predictions, labels, num_classes=num_classes, class_names=class_names)
    return {"evaluator": "accuracy", **report}
