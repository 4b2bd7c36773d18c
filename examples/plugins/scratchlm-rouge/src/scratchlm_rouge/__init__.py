"""scratchlm-rouge: exact-match and ROUGE-L F1 of instruction responses, as a scratchlm evaluator."""

from __future__ import annotations

from scratchlm_rouge.rouge import exact_match, rouge, rouge_l

__all__ = ["exact_match", "rouge", "rouge_l"]
