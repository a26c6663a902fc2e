"""Students in the convolution lab while the class predicts: the Convolution page's three lessons, their
settings and code, then the Exercises page with answers checked and the score read back.

Each lab student, on one real session:

1. opens the Convolution page (the main lesson) and changes stride, padding, the flip of a true
   convolution, a custom kernel, a second kernel and the feature map ReLU and pooling take; opens
   "PyTorch code for this map" and waits for the code;
2. switches to "Transposed convolution", changes its stride and opens its code;
3. switches to "Groups, depthwise and 1x1", picks another group count and opens its code;
4. opens the Exercises page, sets its own seed (so students differ), and answers ``exercises``
   exercises: right ones with the answer the core computes and accepts (``check_answer``, what the
   page's Check runs), and the last one by "Show answer" (counted as wrong); then reads the page's
   score ("R of T right") and compares it with what it did.

Before each action the student pauses (``think``: a random time in a range, as the predicting students
pause before each upload: a student reads what changed before the next click). Each action's time is
from sending the rerun to the end of the run it started (the whole page drawn).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass, field

from cnnviz import pages
from cnnviz.convolution.kernels import CUSTOM
from cnnviz.exercises.check import check_answer
from cnnviz.exercises.generate import random_exercise
from cnnviz.exercises.model import KINDS, WHICH_KERNEL, Exercise
from cnnviz.hosting.session_client import SessionError, StreamlitSession

CUSTOM_KERNEL = "1 0 -1\n2 0 -2\n1 0 -1"  # a Sobel kernel typed by hand
SCORE = re.compile(r"(\d+) of (\d+) " + re.escape(pages.SCORE_TEXT))


@dataclass
class LabRecord:
    """What one lab student did and how long each action took (seconds, by action)."""

    session: str
    actions: dict[str, list[float]] = field(default_factory=dict)
    exercises_answered: int = 0  # checked with the right answer
    exercises_shown: int = 0  # "Show answer" pressed
    verdicts: list[str] = field(default_factory=list)  # what the page said for each, in order
    score_shown: tuple[int, int] | None = None  # (right, tried) as the page writes it at the end
    seconds: float = 0.0  # the whole visit
    error: str | None = None

    @property
    def as_expected(self) -> bool:
        """Every step done, and the page scored the answers as they were given."""
        tried = self.exercises_answered + self.exercises_shown
        return (self.error is None and tried > 0
                and self.score_shown == (self.exercises_answered, tried))


def _errors(session: StreamlitSession, after_run: int) -> list[str]:
    alerts = [e.text for e in session.find("alert", since_run=after_run) if e.format_name == "ERROR"]
    return alerts + session.exceptions


class LabStudent:
    """One session's walk through the lab; each step times itself into ``record``."""

    def __init__(self, session: StreamlitSession, record: LabRecord, think: tuple[float, float] = (0.0, 0.0),
                 rng: random.Random | None = None) -> None:
        self.session = session
        self.record = record
        self.think = think
        self.rng = rng or random.Random(0)

    async def pause(self) -> None:
        await asyncio.sleep(self.rng.uniform(*self.think))

    def _timed(self, action: str, seconds: float) -> None:
        self.record.actions.setdefault(action, []).append(seconds)

    async def rerun(self, action: str, *, page: str = "") -> int:
        """Rerun (or open ``page``) with the values set; times it; returns the runs started before."""
        await self.pause()
        before = self.session.runs_started
        timing = await self.session.run(page_name=page)
        self._timed(action, timing.seconds)
        self._check(action, before)
        return before

    async def click(self, action: str, key: str) -> int:
        await self.pause()
        sent, before = await self.session.click(key)
        timing = await self.session.wait_run_end(sent, before, f"the page after {action}")
        self._timed(action, timing.seconds)
        self._check(action, before)
        return before

    def _check(self, action: str, before: int) -> None:
        problems = _errors(self.session, before)
        if problems:
            raise SessionError(f"{self.session.name}: after {action}: " + "; ".join(problems))

    def key_starting(self, prefix: str) -> str:
        keys = [k for k in self.session.widget_keys() if k.startswith(prefix)]
        if not keys:
            raise SessionError(f"{self.session.name}: the page shows no widget keyed {prefix}...")
        return keys[0]

    async def open_code(self, code_key: str, what: str, *expected: str) -> None:
        """Open a "PyTorch code for this map" expander; the code must show, with the settings the
        student chose in it (``expected``: pieces of its lines)."""
        self.session.set_value(code_key + pages.CODE_OPEN_SUFFIX, bool_value=True)
        before = await self.rerun(f"{what} code")
        code = [e.proto.code_text for e in self.session.find("code", since_run=before)]
        if not any(all(piece in text for piece in expected) for text in code):
            raise SessionError(f"{self.session.name}: the {what} code expander shows no code with "
                               f"{', '.join(expected)}")

    async def main_lesson(self) -> None:
        session = self.session
        await self.rerun("open the Convolution page", page=pages.CONVOLUTION_PAGE)
        session.set_value(pages.CONV_STRIDE_KEY, int_value=2)
        await self.rerun("stride")
        session.set_value(pages.CONV_PADDING_KEY, string_value="1")
        await self.rerun("padding")
        session.set_value(pages.CONV_FLIP_KEY, bool_value=True)
        await self.rerun("flip")
        session.set_value(pages.CONV_KERNEL_COUNT_KEY, int_value=2)
        await self.rerun("second kernel")
        session.set_value(f"{pages.CONV_PRESET_PREFIX}0", string_value=CUSTOM.capitalize())
        await self.rerun("custom kernel")
        session.set_value(f"{pages.CONV_CUSTOM_PREFIX}0", string_value=CUSTOM_KERNEL)
        await self.rerun("custom kernel typed")
        maps = list(session.widget(pages.CONV_FEATURE_MAP_KEY).proto.options)
        session.set_value(pages.CONV_FEATURE_MAP_KEY, string_value=maps[1])
        await self.rerun("feature map")
        await self.open_code(pages.CONV_CODE_KEY, "convolution", "torch.flip(", "F.conv2d(",
                             "stride=2, padding=1,")

    async def other_lessons(self) -> None:
        session = self.session
        session.set_value(pages.CONV_LESSON_KEY, string_value=pages.CONV_LESSONS[1])
        await self.rerun("transposed lesson")
        session.set_value(pages.TCONV_STRIDE_KEY + "_h", int_value=3)
        await self.rerun("transposed stride")
        await self.open_code(pages.TCONV_CODE_KEY, "transposed", "F.conv_transpose2d(", "stride=(3, 2)")
        session.set_value(pages.CONV_LESSON_KEY, string_value=pages.CONV_LESSONS[2])
        await self.rerun("groups lesson")
        groups_key = self.key_starting(pages.CHAN_GROUPS_PREFIX)
        options = list(session.widget(groups_key).proto.options)
        session.set_value(groups_key, string_value=options[-1])  # depthwise: one group per channel
        await self.rerun("groups")
        await self.open_code(pages.CHAN_GROUPED_CODE_KEY, "grouped", f"groups={options[-1]})")

    async def exercise(self, exercise: Exercise, index: int, show: bool) -> None:
        """Answer exercise ``index`` right (or press Show answer) and read the page's verdict."""
        answer_key = next((k for k in self.session.widget_keys() if k.startswith(pages.EXERCISE_ANSWER_PREFIX)
                           and k.endswith(f"_{index}")), None)
        if answer_key is None:
            raise SessionError(f"{self.session.name}: exercise {index + 1} shows no answer box")
        if show:
            before = await self.click("show answer", answer_key + pages.SHOW_ANSWER_SUFFIX)
            expected, self.record.exercises_shown = "INFO", self.record.exercises_shown + 1
        else:
            answer = exercise.answer if exercise.kind == WHICH_KERNEL else exercise.answer_text
            if not check_answer(exercise, str(answer)).correct:  # what the page's Check runs
                raise SessionError(f"{self.session.name}: the core does not accept {answer!r} for {exercise}")
            self.session.set_value(answer_key, string_value=str(answer))
            before = await self.click("check answer", answer_key + pages.CHECK_SUFFIX)
            expected, self.record.exercises_answered = "SUCCESS", self.record.exercises_answered + 1
        verdicts = [e for e in self.session.find("alert", since_run=before) if e.format_name in
                    ("SUCCESS", "INFO", "ERROR", "WARNING")]
        self.record.verdicts.append(verdicts[0].format_name if verdicts else "none")
        if not verdicts or verdicts[0].format_name != expected:
            raise SessionError(f"{self.session.name}: exercise {index + 1} ({exercise.kind}) was answered "
                               f"{'by Show answer' if show else 'right'}, the page said "
                               f"{verdicts[0].text if verdicts else 'nothing'!r}")

    async def exercises(self, seed: int, count: int) -> None:
        await self.rerun("open the Exercises page", page=pages.EXERCISES_PAGE)
        self.session.set_value(pages.EXERCISE_SEED_KEY, int_value=seed)
        await self.rerun("exercise seed")
        for index in range(count):
            exercise = random_exercise(seed, index, KINDS)  # the page's random practice, all kinds
            await self.exercise(exercise, index, show=index == count - 1)
            await self.click("next exercise", pages.EXERCISE_NEXT_KEY)
        found = [SCORE.search(e.text) for e in self.session.find("markdown", pages.SCORE_TEXT)]
        score = next((m for m in found if m), None)
        if score is None:
            raise SessionError(f"{self.session.name}: the Exercises page shows no score")
        self.record.score_shown = (int(score.group(1)), int(score.group(2)))


async def warm_up_lab(session: StreamlitSession, record: LabRecord) -> None:
    """One visit alone before the class, as the predict page's warm-up: the lab pages' first runs in a
    server process import and build what later runs reuse (1.8 s for the Convolution page here)."""
    try:
        await session.connect()
        student = LabStudent(session, record)
        await student.rerun("open the Convolution page", page=pages.CONVOLUTION_PAGE)
        lessons = zip(pages.CONV_LESSONS[1:], ("transposed lesson", "groups lesson"), strict=True)
        for lesson, action in lessons:
            session.set_value(pages.CONV_LESSON_KEY, string_value=lesson)
            await student.rerun(action)
        await student.rerun("open the Exercises page", page=pages.EXERCISES_PAGE)
    except SessionError as err:
        record.error = str(err)
    finally:
        await session.close()


async def lab_student(session: StreamlitSession, record: LabRecord, seed: int, exercises: int,
                      think: tuple[float, float] = (0.0, 0.0)) -> None:
    """Connect, walk the three lessons, answer ``exercises`` exercises of ``seed``, pausing ``think``
    seconds (a random time in the range) before each action; errors go in ``record``."""
    started = time.perf_counter()
    try:
        await session.connect()
        student = LabStudent(session, record, think, random.Random(seed))
        await student.main_lesson()
        await student.other_lessons()
        await student.exercises(seed, exercises)
    except SessionError as err:
        record.error = str(err)
    record.seconds = time.perf_counter() - started
