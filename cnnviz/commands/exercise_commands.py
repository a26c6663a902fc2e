"""`python -m cnnviz exercises`: print a seed's random exercises or a teacher's set (with their answers if
asked), or check a teacher's file (exit status 2 and the line when it is malformed)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnnviz.exercises.generate import DEFAULT_SEED, random_exercises
from cnnviz.exercises.model import KINDS
from cnnviz.exercises.teacher_sets import (
    EXERCISES_DIR_ENV,
    SetProblem,
    TeacherSet,
    load_teacher_set,
    load_teacher_sets,
)
from cnnviz.exercises.text import exercise_text

MAX_COUNT = 200


def register(commands: argparse._SubParsersAction, benches: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "exercises",
        help="print exercises (a seed's random ones or a teacher's set) or check a teacher's file",
        description="Print exercises that the Exercises page checks: the same seed gives the same exercises. "
        f"A teacher's set is a TOML file (the page reads them from the folder {EXERCISES_DIR_ENV} names); "
        "--check validates one (or every set of a folder) and exits with status 2, naming the line, when "
        "one is malformed.",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, metavar="N",
                        help=f"seed of the random exercises (default {DEFAULT_SEED}, as on the page)")
    parser.add_argument("--count", type=int, default=len(KINDS), metavar="K",
                        help=f"how many random exercises (default {len(KINDS)}: one of each kind)")
    parser.add_argument("--kind", action="append", choices=KINDS, help="only this kind (may be repeated)")
    parser.add_argument("--set", type=Path, metavar="FILE", help="print a teacher's set instead")
    parser.add_argument("--answers", action="store_true", help="print each answer and its explanation")
    parser.add_argument("--check", type=Path, metavar="FILE",
                        help="check a teacher's set file, or every *.toml of a folder as the page reads "
                             "them, and say what is wrong")
    parser.set_defaults(func=run_exercises)


def run_exercises(args: argparse.Namespace) -> int:
    if args.check is not None and args.check.is_dir():
        return check_folder(args.check)
    if args.check is not None:
        print(_fine(load_teacher_set(args.check)))  # a TeacherSetError is a ValueError: status 2, the line
        return 0
    if args.set is not None:
        teacher_set = load_teacher_set(args.set)
        print(teacher_set.title + (f"\n{teacher_set.description}" if teacher_set.description else ""))
        exercises = list(teacher_set.exercises)
    else:
        if not 1 <= args.count <= MAX_COUNT:
            raise ValueError(f"--count must be from 1 to {MAX_COUNT}, not {args.count}.")
        # the kinds in their own order whatever the order of --kind: the page's list for the seed
        kinds = tuple(kind for kind in KINDS if kind in (args.kind or KINDS))
        exercises = random_exercises(args.seed, args.count, kinds)
        print(f"Random exercises of seed {args.seed}")
    for number, exercise in enumerate(exercises, start=1):
        print()
        print(exercise_text(exercise, number, args.answers))
    return 0


def _fine(checked: TeacherSet) -> str:
    count = len(checked.exercises)
    return f"{checked.path.name}: {checked.title!r}, {count} exercise{'' if count == 1 else 's'}, all fine."


def check_folder(folder: Path) -> int:
    """Every set of ``folder`` as the page reads them: a line each; status 2 when one is malformed."""
    found = load_teacher_sets(folder)
    if not found:
        raise ValueError(f"{folder} holds no *.toml files: the page would offer only random practice.")
    for entry in found:
        if isinstance(entry, SetProblem):
            print(f"error: {entry}", file=sys.stderr)
        else:
            print(_fine(entry))
    return 2 if any(isinstance(entry, SetProblem) for entry in found) else 0
