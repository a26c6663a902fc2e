"""Reading a student's typed answer leniently ("28x28", "28 28", "28, 28", "row 2, column 3", "-1.5"),
with one friendly sentence for text that is no answer at all."""

from __future__ import annotations

import re

MAX_ANSWER_CHARS = 200  # an answer is a few numbers; longer text is refused before it is read
# words a student may write around the numbers: "H = 28, W = 28", "row 2 column 3", "28 by 28"
FILLER_WORDS = re.compile(r"\b(?:height|width|rows?|cols?|columns?|h|w|by|and|params?|parameters?)\b")
SEPARATORS = re.compile(r"[\s,;x×*()\[\]=:]+")
INTEGER = re.compile(r"^[+-]?\d+$")


def _clean(text: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValueError("Type an answer first.")
    if len(text) > MAX_ANSWER_CHARS:
        raise ValueError(f"An answer is a few numbers; keep it under {MAX_ANSWER_CHARS} characters.")
    return text.strip().lower().replace("−", "-")  # the typographic minus a phone keyboard may give


def parse_pair(text: str, example: str = "28x28, 28 28 or 28, 28") -> tuple[int, int]:
    """Two whole numbers in any of the usual spellings -> (first, second); ValueError otherwise."""
    words = FILLER_WORDS.sub(" ", _clean(text))
    tokens = [t for t in SEPARATORS.split(words) if t]
    if len(tokens) != 2 or not all(INTEGER.match(t) for t in tokens):
        raise ValueError(f"Type two whole numbers, such as {example}; {text.strip()!r} is not that.")
    return int(tokens[0]), int(tokens[1])


def parse_count(text: str) -> int:
    """One whole number, thousands separators allowed ("1,234", "1 234", "1_234")."""
    cleaned = FILLER_WORDS.sub(" ", _clean(text)).strip()
    digits = re.sub(r"(?<=\d)[,_ ](?=\d{3}\b)", "", cleaned)
    if not INTEGER.match(digits):
        raise ValueError(f"Type one whole number, such as 320 or 1,234; {text.strip()!r} is not that.")
    if int(digits) < 0:  # a slip (a stray minus), not a wrong count: say so rather than mark it wrong
        raise ValueError(f"A count is never negative: type one whole number, such as 320; {text.strip()!r} "
                         "is below 0.")
    return int(digits)


def parse_number(text: str) -> float:
    """One number: "3", "-2.5", "1e-3" or a fraction "7/2"."""
    cleaned = _clean(text).replace(" ", "")
    try:
        if "/" in cleaned:
            numerator, denominator = cleaned.split("/", 1)
            value = float(numerator) / float(denominator)
        else:
            value = float(cleaned)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"Type one number, such as -3, 2.5 or 7/2; {text.strip()!r} is not that.") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("Type an ordinary number (not inf or nan).")
    return value


def parse_choice(text: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` by its name (any case) or its number counted from 1."""
    cleaned = _clean(text)
    for choice in choices:
        if cleaned == choice.lower():
            return choice
    if cleaned.isdecimal() and 1 <= int(cleaned) <= len(choices):
        return choices[int(cleaned) - 1]
    listed = ", ".join(f"{i} {c}" for i, c in enumerate(choices, start=1))
    raise ValueError(f"Pick one of the kernels by name or number: {listed}.")
