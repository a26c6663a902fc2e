"""What the server shares between sessions (limits, the training queue) and what each session owns.

Shared, once per process: the host's limits and the training queue. Per session: a session-scoped
resource that knows the session's training jobs, so that closing the tab stops them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import streamlit as st
import torch
from streamlit import runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from cnnviz.hosting.limits import HostLimits, load_limits
from cnnviz.runtime import LOW_PRIORITY_NICE, limit_malloc_arenas
from cnnviz.training.jobs import TrainingJob, TrainingQueue
from cnnviz.training.reaper import JobReaper
from cnnviz.ui.navigation import PAGES, PageSpec

TRAINING_NICE = LOW_PRIORITY_NICE  # training threads yield the CPU to other students' page reruns
# Streamlit sets this cookie once per browser (server.enableXsrfProtection, on by default); every tab
# of that browser sends it, so it tells one student's tabs from another student's.
BROWSER_COOKIE = "_streamlit_xsrf"


def _secrets() -> dict:
    try:
        return st.secrets.to_dict() if st.secrets.load_if_toml_exists() else {}
    except Exception:  # noqa: BLE001 - a broken secrets file is reported by Streamlit itself
        return {}


@st.cache_resource(show_spinner=False)
def host_limits() -> HostLimits:
    """The server's limits (environment, then secrets.toml, then defaults), read once per process (which
    is also when the process's malloc arenas are capped: see :func:`cnnviz.runtime.limit_malloc_arenas`)."""
    limit_malloc_arenas()
    return load_limits(os.environ, _secrets())


def limits_or_stop() -> HostLimits:
    """The limits, or a clear message to the host (and nothing else) when a setting is wrong."""
    try:
        return host_limits()
    except ValueError as err:
        st.error(f"cnnviz cannot start: {err}", icon=":material/settings:")
        st.stop()
        raise  # st.stop() raises; this keeps type checkers sure a value is returned


def enabled_pages() -> list[PageSpec]:
    """The pages this server offers, in menu order (the home page is always there)."""
    allowed = host_limits().pages
    return [page for page in PAGES if page.url_path in allowed]


def upload_limit_mb() -> int:
    """The upload cap shown by the uploaders: the host's limit, within Streamlit's own server cap."""
    return min(host_limits().max_upload_mb, int(st.get_option("server.maxUploadSize")))


def upload_limits() -> dict[str, int]:
    """Keyword arguments for :func:`cnnviz.images.decode.decode_image`."""
    return {"max_bytes": upload_limit_mb() * 2**20, "max_pixels": host_limits().max_image_pixels}


def run_memory_budget() -> int:
    """Bytes one training run may use at its predicted peak on this server."""
    return host_limits().run_memory_budget(torch.cuda.device_count())


@st.cache_resource(show_spinner=False)
def training_queue() -> TrainingQueue:
    """One line for the whole server: a few runs train, the others wait their turn."""
    limits = host_limits()
    return TrainingQueue(limits.training_slots(torch.cuda.device_count()), limits.max_queue,
                         limits.max_runs_per_client)


def client_key() -> str | None:
    """Who this session is, for the runs-per-client cap: the browser by its cookie, else the address
    it connects from (the first of X-Forwarded-For behind a proxy); None when neither is known."""
    cookie = _text(st.context.cookies.get(BROWSER_COOKIE))
    if cookie:
        return "browser " + hashlib.sha256(_unmasked(cookie)).hexdigest()[:16]  # the token itself stays out
    address = _text(st.context.headers.get("X-Forwarded-For")).split(",")[0].strip()
    address = address or _text(st.context.ip_address)
    return "address " + address if address else None


def _unmasked(cookie: str) -> bytes:
    """The browser's own token from Streamlit's (Tornado's) XSRF cookie ``2|mask|masked token|time``:
    each page load writes it with a new random mask, the token under it stays the same."""
    parts = cookie.split("|")
    try:
        mask, masked = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
    except (IndexError, ValueError):
        return cookie.encode()  # another format: the value itself
    if parts[0] != "2" or not mask:
        return cookie.encode()
    return bytes(byte ^ mask[i % len(mask)] for i, byte in enumerate(masked))


def _text(value: object) -> str:
    """A string from st.context, else "" (nothing was sent; under AppTest it hands out mocks)."""
    return value if isinstance(value, str) else ""


@st.cache_resource(show_spinner=False)
def job_reaper() -> JobReaper[TrainingJob]:
    """One for the server: it stops the runs of sessions gone for longer than Streamlit keeps a
    disconnected session (``server.disconnectedSessionTTL``), so a dropped network does not."""
    return JobReaper[TrainingJob](float(st.get_option("server.disconnectedSessionTTL")), _session_connected)


def _session_connected(session_id: str) -> bool:
    """True while a browser is connected to the session (the runtime's public, thread-safe check)."""
    return runtime.exists() and runtime.get_instance().is_active_session(session_id)


@dataclass
class SessionJobs:
    """The training jobs this session started, handed to the reaper when the session lets go of them."""

    session_id: str
    reaper: JobReaper[TrainingJob]
    jobs: list[TrainingJob] = field(default_factory=list)

    def watch(self, job: TrainingJob) -> None:
        self.jobs = [j for j in self.jobs if not j.snapshot().finished] + [job]

    def release(self) -> None:
        """Streamlit clears session resources on every disconnect, even one it will resume a second
        later; so the jobs are not stopped here but parked with the reaper until the session is gone."""
        self.reaper.park(self.session_id, [j for j in self.jobs if not j.snapshot().finished])
        self.jobs.clear()


@st.cache_resource(scope="session", on_release=SessionJobs.release, show_spinner=False)
def session_jobs() -> SessionJobs:
    """This session's jobs, with those it left with the reaper when its connection dropped; they are
    stopped once the session is gone (tab closed, after Streamlit's reconnect grace period)."""
    ctx = get_script_run_ctx()
    assert ctx is not None, "session_jobs() is called from a page script"
    reaper = job_reaper()
    return SessionJobs(ctx.session_id, reaper, reaper.reclaim(ctx.session_id))
