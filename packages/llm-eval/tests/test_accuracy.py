"""Classification metrics against hand-computed values, and the evaluator over a classifier."""

from __future__ import annotations

import pytest
import torch

from llm_core.errors import ConfigError, DataError
from llm_eval.accuracy import classification_metrics, evaluate_accuracy, predict_classes


def test_metrics_match_hand_computed_values() -> None:
    labels = [0, 0, 0, 1, 1, 2]
    preds = [0, 1, 0, 1, 2, 2]
    m = classification_metrics(preds, labels, class_names=["ham", "spam", "other"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    # ham: tp 2, predicted 2, support 3; spam: tp 1, predicted 2, support 2;
    # other: tp 1, predicted 2, support 1
    assert m["per_class"]["ham"] == pytest.approx(
        {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3}
    )
    assert m["per_class"]["spam"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert m["per_class"]["other"] == pytest.approx(
        {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1}
    )
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_class_never_predicted_has_zero_precision() -> None:
    m = classification_metrics([0, 0], [0, 1], num_classes=2)
    assert m["per_class"]["1"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_evaluator_reads_logits_at_each_examples_last_real_token() -> None:
    class LastTokenParity(torch.nn.Module):
        """Class = parity of the token at each position: (b, t) -> (b, t, 2)."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.one_hot(x % 2, 2).float()

    examples = [([3, 4], 0), ([2, 2, 7], 1), ([1], 1), ([5, 6, 8, 10], 0), ([9, 8], 1)]
    preds, gold = predict_classes(LastTokenParity(), examples, batch_size=2)
    assert preds == [0, 1, 1, 0, 0] and gold == [0, 1, 1, 0, 1]
    report = evaluate_accuracy(LastTokenParity(), examples, class_names=["even", "odd"])
    assert report["accuracy"] == pytest.approx(0.8)
    assert report.keys() >= evaluate_accuracy.schema


def test_bad_inputs() -> None:
    with pytest.raises(DataError, match="as many predictions as labels, found 2 predictions and 3 labels"):
        classification_metrics([0, 1], [0, 1, 1])
    with pytest.raises(DataError, match=r"labels\[1\]: expected a class index"):
        classification_metrics([0, 1], [0, -1])
    with pytest.raises(DataError, match=r"class index 3 is outside 0\.\.1"):
        classification_metrics([0, 3], [0, 1], num_classes=2)
    with pytest.raises(DataError, match="at least one labelled example"):
        classification_metrics([], [])
    with pytest.raises(ConfigError, match="classifier and examples, or predictions and labels"):
        evaluate_accuracy()
