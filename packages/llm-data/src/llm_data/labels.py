"""Class labels of classification data: the confusion matrix both finetuning and evaluation report."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["confusion_matrix"]


def confusion_matrix(predictions: Sequence[int], labels: Sequence[int], num_classes: int) -> list[list[int]]:
    """``matrix[true][predicted]`` counts (rows: true class, columns: predicted class)."""
    matrix = [[0] * num_classes for _ in range(num_classes)]
    for p, y in zip(predictions, labels, strict=True):
        matrix[y][p] += 1
    return matrix
