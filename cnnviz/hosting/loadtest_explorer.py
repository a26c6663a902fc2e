"""Students on the explorer while the class predicts: a cell typed, its 9 top images, an optimized image.

Each exploring session opens "Explore the network" (the shipped MNIST model and a test-set image, the
page's defaults), then for ``rounds`` rounds: types a cell of the first convolution (channel = the
round), waits for its value; presses the top-images button and waits for the 9 images; presses the
optimize button and waits for the optimized image. The heavy two run at training's low priority on the
server: the predicting students' p95 must not move (the scenario's target).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from cnnviz import pages
from cnnviz.hosting.session_client import SessionError, ShownElement, StreamlitSession

FIRST_CONV_LAYER = 0  # of the shipped MNIST model, the page's default


@dataclass
class ExplorerRecord:
    """What one exploring student did and how long each answer took (seconds)."""

    session: str
    rounds: int = 0
    cell_seconds: list[float] = field(default_factory=list)  # a typed cell -> its value shown
    top_images_seconds: list[float] = field(default_factory=list)  # the button -> the 9 images
    optimize_seconds: list[float] = field(default_factory=list)  # the button -> the optimized image
    error: str | None = None

    @property
    def as_expected(self) -> bool:
        """Every round showed a value, the top images and an optimized image, and nothing failed."""
        return (self.error is None and self.rounds > 0
                and len(self.cell_seconds) == len(self.top_images_seconds) == len(self.optimize_seconds)
                == self.rounds)


def _value_shown(after_run: int):
    return lambda e: (e.kind == "metric" and e.proto.label == pages.EXPLORE_VALUE_LABEL
                      and e.run > after_run)


def _text_shown(text: str, after_run: int):
    needle = text.lower()
    return lambda e: e.run > after_run and needle in e.text.lower()


def _errors(session: StreamlitSession, after_run: int) -> list[str]:
    alerts = [e.text for e in session.find("alert", since_run=after_run) if e.format_name == "ERROR"]
    return alerts + session.exceptions


async def _click_and_wait(session: StreamlitSession, key: str, shown, what: str,
                          timeout: float) -> tuple[float, ShownElement]:
    sent, before = await session.click(key)
    element = await session.wait_for_element(shown(before), what, timeout)
    # the end of the run that showed it: a page that polls (the top images) shows it in a later run
    await session.wait_run_end(sent, max(before, element.run - 1), f"the page after {what}")
    return element.received - sent, element


async def exploring_student(session: StreamlitSession, record: ExplorerRecord, rounds: int,
                            timeout: float) -> None:
    """Connect, open the explorer, then ``rounds`` times: a cell, its top images, an optimized image."""
    try:
        await session.connect()
        await session.open_page(pages.EXPLORE_PAGE)
        for channel in range(rounds):
            session.set_value(pages.EXPLORE_LAYER_KEY, int_value=FIRST_CONV_LAYER)
            session.set_value(pages.EXPLORE_CHANNEL_KEY, int_value=channel)
            session.set_value(pages.EXPLORE_ROW_KEY, int_value=10 + channel)
            session.set_value(pages.EXPLORE_COL_KEY, int_value=12)
            sent = time.perf_counter()
            before = session.runs_started
            await session.run()
            value = await session.wait_for_element(_value_shown(before), "the cell's value", timeout)
            record.cell_seconds.append(value.received - sent)
            seconds, _ = await _click_and_wait(session, pages.EXPLORE_TOP_IMAGES_KEY,
                                               lambda run: _text_shown(pages.TOP_IMAGES_DONE_TEXT, run),
                                               "the 9 top images", timeout)
            record.top_images_seconds.append(seconds)
            seconds, _ = await _click_and_wait(session, pages.EXPLORE_OPTIMIZE_KEY,
                                               lambda run: _text_shown(pages.OPTIMIZED_DONE_TEXT, run),
                                               "the optimized image", timeout)
            record.optimize_seconds.append(seconds)
            problems = _errors(session, before)
            if problems:
                raise SessionError(f"{session.name}: " + "; ".join(problems))
            record.rounds += 1
    except SessionError as err:
        record.error = str(err)
