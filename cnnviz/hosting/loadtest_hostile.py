"""The hostile students: a few sessions that push every documented limit while the class predicts.

Each hostile session, for a bounded number of rounds:

1. on the Train page, types the widest spec the size gate allows and picks the largest batch the page
   offers: the page must refuse the run over its memory budget (an error, Train disabled);
2. walks the batch down, one rerun and one memory estimate each, to the largest batch the page admits
   (for a net heavy but allowed), presses Train there and Stop once the run shows progress;
3. on the Inspect and predict page uploads big decodes: pictures whose header says they are over the
   pixel limit or need too much memory to decode (the decoder must refuse them) and one big picture
   within the limits (it must be predicted);
4. back on the Train page, presses Save on the stopped run :data:`SAVE_PRESSES` times a round: each
   press must either save or meet the per-session quota's sentence, and never save past the quota.
"""

from __future__ import annotations

import asyncio
import functools
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from cnnviz import pages
from cnnviz.hosting.session_client import SessionError, StreamlitSession
from cnnviz.training.presets import CUSTOM_PRESET

# Words of the refusals, as the core writes them (tests/test_loadtest.py checks they still appear):
MEMORY_REFUSAL_TEXT = "this server allows"  # training.memory.memory_problem
DECODE_REFUSAL_TEXT = "use a smaller"  # images.decode: over the pixel limit, or too much memory to decode
SIZE_GATE_TEXT = "too big to train here"  # networks.summary.training_size_problem
SAVE_QUOTA_TEXT = "you have saved them all"  # training.saving.quota_problem, the per-session quota
SAVE_PRESSES = 3  # presses of Save a round

# MNIST (1 x 28 x 28): 3.8 M activations per image, under the gate's 5 M; at any offered batch its
# saved activations are over a 2 GB training budget.
WIDEST_SPEC = "C2048 M M F16"
HEAVY_SPEC = "C256 C256 M C256 M F256"  # allowed at a middling batch: the run that is started and stopped
PRESET_KEY = re.compile(f"^{re.escape(pages.TRAIN_FORM_PREFIX)}preset_")
BATCH_KEY = re.compile(f"^{re.escape(pages.train_form_key(CUSTOM_PRESET.name))}_batch$")
SPEC_KEY = "train_spec"
STOP_KEY = "train_stop"


@dataclass(frozen=True)
class BigPicture:
    """A picture built here; ``refused`` says whether the decoder must refuse it."""

    name: str
    mode: str
    size: tuple[int, int]
    refused: bool


BIG_PICTURES = (
    BigPicture("8000x8000.png", "L", (8000, 8000), True),  # 64 MP: over the 40 MP pixel limit
    BigPicture("6000x6000-16bit.png", "I;16", (6000, 6000), True),  # 36 MP, but 288 MB to decode
    BigPicture("6000x6000.png", "RGB", (6000, 6000), False),  # 36 MP RGB: within the limits, predicted
)


@functools.cache
def picture_bytes(picture: BigPicture) -> bytes:
    """The picture as a PNG: a white bar on black (a "1"; a blank picture is refused as blank), which
    compresses to well under the upload limit."""
    from PIL import Image, ImageDraw

    buffer = io.BytesIO()
    image = Image.new(picture.mode, picture.size)
    width, height = picture.size
    bar = (width * 9 // 20, height // 5, width * 11 // 20, height * 4 // 5)
    ImageDraw.Draw(image).rectangle(bar, fill=255)
    image.save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class HostileRecord:
    """What one hostile session tried and what it got."""

    session: str
    rounds: int = 0
    estimates: int = 0  # Train page reruns that showed a memory estimate
    memory_refusals: int = 0  # runs refused over the memory budget with Train disabled ("as expected")
    refusals_with_train_enabled: int = 0  # a refusal shown while Train stayed enabled: a failure
    size_gate_refusals: int = 0
    trainings_started: int = 0  # allowed heavy runs started (and stopped)
    trainings_stopped: int = 0
    decodes_refused: int = 0  # big pictures refused, as expected
    decodes_predicted: int = 0  # big pictures within the limits, predicted
    decode_surprises: list[str] = field(default_factory=list)  # a picture not treated as expected
    saves: int = 0  # presses of Save that saved
    save_refusals: int = 0  # presses refused with the per-session quota's sentence
    save_surprises: list[str] = field(default_factory=list)  # a press answered otherwise, or a save too many
    error: str | None = None

    @property
    def as_expected(self) -> bool:
        """Every refusal came, Train was never left enabled on a refused run, and nothing failed."""
        pictures = self.rounds * len(BIG_PICTURES)
        return (self.error is None and self.memory_refusals >= self.rounds > 0
                and not self.refusals_with_train_enabled and not self.decode_surprises
                and self.decodes_refused + self.decodes_predicted == pictures and not self.save_surprises)


def _errors(session: StreamlitSession, text: str, since_run: int) -> list[str]:
    return [e.text for e in session.find("alert", text, since_run=since_run) if e.format_name == "ERROR"]


async def _set_spec_and_batch(session: StreamlitSession, record: HostileRecord, spec: str | None,
                              batch: str) -> tuple[bool, int]:
    """Type the spec (when given) and choose the batch; (refused, run) for the estimate shown after."""
    if spec is not None:
        session.set_value(SPEC_KEY, string_value=spec)
    batch_key = next((k for k in session.widget_keys() if BATCH_KEY.match(k)), None)
    if batch_key is None:
        raise SessionError(f"{session.name}: the Train page shows no batch-size choice")
    session.set_value(batch_key, string_array_value={"data": [batch]})
    run = session.runs_started
    await session.run()
    record.estimates += 1
    if _errors(session, SIZE_GATE_TEXT, run):
        record.size_gate_refusals += 1
    refused = bool(_errors(session, MEMORY_REFUSAL_TEXT, run))
    if refused:
        record.memory_refusals += 1
        if not session.widget(pages.TRAIN_START_KEY).proto.disabled:
            record.refusals_with_train_enabled += 1
    return refused, run


async def train_and_stop(session: StreamlitSession, record: HostileRecord, timeout: float) -> None:
    """Press Train on an allowed run, wait for its first step (after its place in line), press Stop."""
    session.first_seen.clear()
    sent, before = await session.click(pages.TRAIN_START_KEY)
    await session.wait_run_end(sent, before, "the page after Train")
    if session.find("alert", pages.QUEUE_FULL_TEXT, since_run=before):
        return
    record.trainings_started += 1
    def stepped() -> bool:  # a step taken (after its wait in line), so the stopped run can be saved
        return any(" step " in e.text and " step 0 of" not in e.text for e in session.find("progress"))

    await session.wait_until(stepped, "a training step", timeout)
    sent, before = await session.click(STOP_KEY)
    await session.wait_run_end(sent, before, "the page after Stop")
    record.trainings_stopped += 1


async def hostile_train_round(session: StreamlitSession, record: HostileRecord, timeout: float) -> None:
    """The widest net at the largest batch (refused), then a heavy net walked down to a batch it admits."""
    batch_key = next((k for k in session.widget_keys() if BATCH_KEY.match(k)), None)
    if batch_key is None:
        raise SessionError(f"{session.name}: the Train page shows no batch-size choice")
    batches: Sequence[str] = sorted(session.widget(batch_key).proto.options, key=int, reverse=True)
    await _set_spec_and_batch(session, record, WIDEST_SPEC, batches[0])
    spec: str | None = HEAVY_SPEC
    for batch in batches:
        refused, _ = await _set_spec_and_batch(session, record, spec, batch)
        spec = None
        if not refused:
            if not session.widget(pages.TRAIN_START_KEY).proto.disabled:
                await train_and_stop(session, record, timeout)
            return


async def hostile_decodes(session: StreamlitSession, record: HostileRecord) -> None:
    """Upload each big picture on the predict page; the refused ones must show the decoder's refusal."""
    for picture in BIG_PICTURES:
        await session.stage_upload(pages.PREDICT_UPLOAD_KEY, picture.name, picture_bytes(picture))
        run = session.runs_started
        await session.run()
        refused = bool(_errors(session, DECODE_REFUSAL_TEXT, run))
        metrics = session.find("metric", since_run=run)
        predicted = any(e.proto.label == pages.PREDICTION_LABEL for e in metrics)
        if picture.refused and refused and not predicted:
            record.decodes_refused += 1
        elif not picture.refused and predicted and not refused:
            record.decodes_predicted += 1
        else:
            record.decode_surprises.append(f"{picture.name}: refused={refused}, predicted={predicted}")


def _save_button_shown(session: StreamlitSession) -> bool:
    return any(e.key == pages.TRAIN_SAVE_KEY for e in session.elements.values())


async def hostile_saves(session: StreamlitSession, record: HostileRecord, save_quota: int | None,
                        timeout: float) -> None:
    """Once the stopped run is in the run history, press Save :data:`SAVE_PRESSES` times; each press must
    save or be refused with the quota's sentence, and no more than ``save_quota`` (when known) may save."""
    def settled() -> bool:  # the run in the history (the page reruns by itself), or nothing to save
        return _save_button_shown(session) or bool(session.find("alert", pages.NOTHING_TO_SAVE_TEXT))

    await session.wait_until(settled, "the stopped run in the run history", timeout)
    if not _save_button_shown(session):
        return  # the run was stopped in line, before a step: nothing to save
    for _ in range(SAVE_PRESSES):
        sent, before = await session.click(pages.TRAIN_SAVE_KEY)
        await session.wait_run_end(sent, before, "the page after Save")
        saved = bool(session.find("alert", pages.SAVED_TEXT, since_run=before))
        refused = bool(_errors(session, SAVE_QUOTA_TEXT, before))
        if saved and not refused:
            record.saves += 1
            if record.save_refusals:
                record.save_surprises.append("a save after the quota's refusal")
        elif refused and not saved:
            record.save_refusals += 1
        else:
            shown = [e.text for e in session.find("alert", since_run=before)]
            record.save_surprises.append(f"a press of Save answered with {shown}")
    if save_quota is not None and record.saves > save_quota:
        record.save_surprises.append(f"{record.saves} saves, over the quota of {save_quota}")


async def hostile_student(session: StreamlitSession, record: HostileRecord, rounds: int,
                          train_dataset: str, timeout: float, save_quota: int | None = None) -> None:
    """Connect, then ``rounds`` times: the Train page's worst settings, the big decodes, the saves."""
    try:
        await session.connect()
        for _ in range(rounds):
            await session.open_page(pages.TRAIN_PAGE)
            await session.choose(pages.TRAIN_DATASET_KEY, train_dataset)
            preset_key = next(k for k in session.widget_keys() if PRESET_KEY.match(k))
            await session.choose(preset_key, CUSTOM_PRESET.title)
            await hostile_train_round(session, record, timeout)
            await session.open_page(pages.PREDICT_PAGE)
            await session.choose(pages.PREDICT_SOURCE_KEY, pages.UPLOAD_INPUT)
            await hostile_decodes(session, record)
            await session.open_page(pages.TRAIN_PAGE)
            await hostile_saves(session, record, save_quota, timeout)
            record.rounds += 1
            await asyncio.sleep(0)
    except (SessionError, StopIteration) as err:
        record.error = f"{session.name}: {err or 'the Train page shows no architecture choice'}"
