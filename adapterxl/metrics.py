"""Metrics equal to the official XTREME evaluation code (google-research/xtreme ``evaluate.py``).

All scores are on the percent scale (0-100), as XTREME reports them.
"""

from __future__ import annotations

from collections.abc import Sequence


def accuracy(predictions: Sequence, references: Sequence) -> float:
    """Classification accuracy in percent, as XTREME's ``evaluate.accuracy``.

    The official code compares predictions and gold labels as strings and divides by the number of
    predictions; it asserts that both have the same length, so a length mismatch is an error here.
    """
    if len(predictions) != len(references):
        raise ValueError(
            f"accuracy: {len(predictions)} predictions for {len(references)} references; "
            "every example needs exactly one prediction"
        )
    if not predictions:
        raise ValueError("accuracy: no predictions to score (the evaluation set is empty)")
    correct = sum(str(p) == str(r) for p, r in zip(predictions, references, strict=False))
    return 100.0 * correct / len(predictions)
