"""Terminal-safe text: control characters shown as escapes, JSON still JSON."""

from __future__ import annotations

import json

import pytest

from driftcheck.printable import printable, printable_json

HOSTILE = "a\x1b[2J\x1b]0;title\x07b\x9bc\u202ed\x7f\r"


def test_control_characters_are_shown_not_sent() -> None:
    assert printable(HOSTILE) == "a\\x1b[2J\\x1b]0;title\\x07b\\x9bc\\u202ed\\x7f\\x0d"


@pytest.mark.parametrize("text", ["plain", "tab\there\nnext line\n", "é ü ß 日本", "\\x1b"])
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert printable(text) == text


def test_one_line_text_cannot_start_a_line() -> None:
    assert printable("a\nb\tc", one_line=True) == "a\\x0ab\\x09c"


def test_json_stays_json_and_carries_the_same_text() -> None:
    text = printable_json({"k": HOSTILE, "é": ["\u2028"]})
    assert json.loads(text) == {"k": HOSTILE, "é": ["\u2028"]}
    assert printable(text) == text  # nothing left for a terminal to act on
    assert "é" in text  # readable where it can be
