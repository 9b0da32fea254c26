import pytest

from adapterxl.metrics import accuracy


def test_accuracy_hand_computed():
    # 3 of 4 correct -> 75%; percent scale as XTREME reports.
    assert accuracy([0, 1, 2, 2], [0, 1, 2, 0]) == pytest.approx(75.0)
    assert accuracy([1], [1]) == 100.0
    assert accuracy([0, 0, 0], [1, 2, 1]) == 0.0


def test_accuracy_compares_as_strings_like_the_official_script():
    # evaluate.py reads labels from text files: "1" and 1 are the same label.
    assert accuracy(["1", "0"], [1, 0]) == 100.0
    assert accuracy(["entailment", "neutral"], ["entailment", "contradiction"]) == 50.0


def test_accuracy_rejects_length_mismatch_and_empty():
    with pytest.raises(ValueError, match="2 predictions for 3 references"):
        accuracy([0, 1], [0, 1, 2])
    with pytest.raises(ValueError, match="empty"):
        accuracy([], [])
