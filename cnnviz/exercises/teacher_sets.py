"""A teacher's exercise sets: TOML files in the folder ``CNNVIZ_EXERCISES_DIR`` names, each a titled set
of fixed exercises (``[[exercise]]``: a kind and its settings; the answer is always computed) and random
ones (``[[random]]``: a kind, a count and a seed). A malformed file gets one message naming the file and
the line; the other files still load."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnviz.exercises.generate import MAX_SEED, build_exercise, draw_exercise, kind_module
from cnnviz.exercises.model import Exercise, SettingError

EXERCISES_DIR_ENV = "CNNVIZ_EXERCISES_DIR"
MAX_FILE_BYTES = 256 * 1024  # a set is a few dozen short tables
MAX_SET_EXERCISES = 200
MAX_RANDOM_COUNT = 50
TOP_KEYS = ("title", "description", "exercise", "random")
RANDOM_KEYS = ("kind", "count", "seed")
TOML_LINE = re.compile(r"at line (\d+)")
# a table header such as [[exercise]]; a row of a multi-line array ([1, 2]) starts with no letter
TABLE_HEADER = re.compile(r"^\s*\[\[?\s*[A-Za-z_][A-Za-z0-9_.-]*\s*\]\]?\s*(#.*)?$")


@dataclass(frozen=True)
class TeacherSet:
    """A titled list of exercises from one file."""

    title: str
    path: Path
    description: str
    exercises: tuple[Exercise, ...]


@dataclass(frozen=True)
class SetProblem:
    """Why one file could not be read, and where."""

    path: Path
    line: int | None  # 1-based; None when no one line is at fault (the file is not text, say)
    message: str

    def __str__(self) -> str:
        where = f"{self.path.name}, line {self.line}" if self.line else self.path.name
        return f"{where}: {self.message}"


class TeacherSetError(ValueError):
    """A malformed set; ``problem`` says which file and line."""

    def __init__(self, problem: SetProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def teacher_sets_dir(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The folder of the teacher's sets, or None when the variable is not set."""
    value = environ.get(EXERCISES_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else None


def _table_lines(lines: list[str], name: str) -> list[int]:
    """The 1-based line of each ``[[name]]`` header, in file order."""
    header = re.compile(rf"^\s*\[\[\s*{re.escape(name)}\s*\]\]")
    return [number for number, line in enumerate(lines, 1) if header.match(line)]


def _key_line(lines: list[str], start: int, key: str) -> int | None:
    """The line of ``key = ...`` in the table whose header is on line ``start`` (0: the top of the file)."""
    assignment = re.compile(rf"""^\s*(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')\s*=""")
    for number in range(start + 1, len(lines) + 1):
        line = lines[number - 1]
        if TABLE_HEADER.match(line):
            return None  # the next table begins
        if assignment.match(line):
            return number
    return None


def _random_exercises(table: dict[str, Any]) -> list[Exercise]:
    for key in table:
        if key not in RANDOM_KEYS:
            raise SettingError(key, f"A [[random]] table has only {', '.join(RANDOM_KEYS)}; not '{key}'.")
    for key in RANDOM_KEYS:
        if key not in table:
            raise SettingError(None, f"A [[random]] table needs '{key}'.")
    kind, count, seed = table["kind"], table["count"], table["seed"]
    kind_module(kind)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_RANDOM_COUNT:
        raise SettingError("count", f"'count' must be a whole number from 1 to {MAX_RANDOM_COUNT}, "
                                    f"not {count!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise SettingError("seed", f"'seed' must be a whole number from 0 to {MAX_SEED:,}, not {seed!r}.")
    return [draw_exercise(kind, seed, index) for index in range(count)]


def _fixed_exercise(table: dict[str, Any]) -> Exercise:
    if "kind" not in table:
        raise SettingError(None, "An [[exercise]] table needs 'kind'.")
    if "answer" in table:
        raise SettingError("answer", "Leave 'answer' out: cnnviz computes every answer from the settings.")
    settings = {key: value for key, value in table.items() if key != "kind"}
    return build_exercise(table["kind"], settings)


def _entries(document: dict[str, Any], lines: list[str]) -> list[tuple[int, str, dict[str, Any]]]:
    """Every [[exercise]] and [[random]] table with its header line, in file order."""
    entries = []
    for name in ("exercise", "random"):
        tables = document.get(name, [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise TeacherSetError(SetProblem(Path(), _key_line(lines, 0, name) or _single_table(lines, name),
                                             f"Write each {name} as a [[{name}]] table (two brackets)."))
        headers = _table_lines(lines, name)
        for index, table in enumerate(tables):
            entries.append((headers[index] if index < len(headers) else 0, name, table))
    return sorted(entries, key=lambda entry: entry[0])


def _single_table(lines: list[str], name: str) -> int | None:
    header = re.compile(rf"^\s*\[\s*{re.escape(name)}\s*\]")
    return next((n for n, line in enumerate(lines, 1) if header.match(line)), None)


def parse_teacher_set(text: str, path: Path) -> TeacherSet:
    """A set from a file's text; TeacherSetError naming the line of the first problem."""
    def fail(line: int | None, message: str) -> TeacherSetError:
        return TeacherSetError(SetProblem(path, line, message))

    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        found = TOML_LINE.search(str(err))
        raise fail(int(found.group(1)) if found else None, f"This is not valid TOML: {err}.") from None
    lines = text.splitlines()
    for key in document:
        if key not in TOP_KEYS:
            raise fail(_key_line(lines, 0, key) or _single_table(lines, key),
                       f"A set has {', '.join(TOP_KEYS)}; '{key}' is none of them.")
    title = document.get("title")
    if not isinstance(title, str) or not title.strip():
        raise fail(_key_line(lines, 0, "title") or 1, 'A set needs a title: title = "Week 3: output sizes".')
    description = document.get("description", "")
    if not isinstance(description, str):
        raise fail(_key_line(lines, 0, "description"), "'description' must be text in quotes.")
    try:
        entries = _entries(document, lines)
    except TeacherSetError as err:
        raise fail(err.problem.line, err.problem.message) from None
    exercises: list[Exercise] = []
    for header, name, table in entries:
        try:
            exercises += _random_exercises(table) if name == "random" else [_fixed_exercise(table)]
        except SettingError as err:
            line = (_key_line(lines, header, err.key) if err.key else None) or header or None
            raise fail(line, str(err)) from None
        if len(exercises) > MAX_SET_EXERCISES:
            raise fail(header or None, f"A set holds at most {MAX_SET_EXERCISES} exercises; split it in two.")
    if not exercises:
        raise fail(None, "The set has no exercises: add [[exercise]] or [[random]] tables.")
    return TeacherSet(title.strip(), path, description.strip(), tuple(exercises))


def load_teacher_set(path: Path) -> TeacherSet:
    """One file's set; TeacherSetError when it cannot be read or is malformed."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            message = f"The file is over {MAX_FILE_BYTES // 1024} KB; a set is a few dozen short tables."
            raise TeacherSetError(SetProblem(path, None, message))
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise TeacherSetError(SetProblem(path, None, "The file is not UTF-8 text.")) from None
    except OSError as err:
        raise TeacherSetError(SetProblem(path, None, f"The file cannot be read ({err.strerror}).")) from None
    return parse_teacher_set(text, path)


def load_teacher_sets(folder: Path) -> list[TeacherSet | SetProblem]:
    """Every ``*.toml`` set in ``folder`` by file name, a SetProblem in the place of each malformed one."""
    if not folder.is_dir():
        return [SetProblem(folder, None, f"The folder {EXERCISES_DIR_ENV} names does not exist.")]
    found: list[TeacherSet | SetProblem] = []
    for path in sorted(folder.glob("*.toml")):
        try:
            found.append(load_teacher_set(path))
        except TeacherSetError as err:
            found.append(err.problem)
    return found
