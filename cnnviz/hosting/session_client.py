"""One Streamlit session over Streamlit's own websocket protocol, spoken as the browser speaks it.

What the browser does, read from Streamlit 1.67 (``streamlit/web/server/starlette``,
``streamlit/runtime/app_session.py`` and the compiled frontend), and what this client repeats:

- ``GET /_stcore/health`` sets the XSRF cookie; an upload echoes it in the ``X-Xsrftoken`` header.
- ``ws://HOST/_stcore/stream`` with the subprotocols ``["streamlit", <xsrf token>]``; every frame
  is one protobuf: a ``BackMsg`` from the client, a ``ForwardMsg`` from the server.
- A run is asked for with ``BackMsg.rerun_script`` (a ``ClientState``): the first names the page
  (``page_name`` = its url path), later ones send ``page_script_hash`` and every widget value.
- The server answers a run with ``new_session`` (run id; fragment ids for a fragment run), the
  page's elements as deltas at delta paths, and ``script_finished``.
- Widgets are elements whose proto has an ``id``; a widget with a user key has an id that ends
  in ``-<key>``. An expander keyed with ``on_change`` is a widget (``bool_value``: open) sent as
  an ``add_block``. A button click is a ``trigger_value`` sent with one rerun only.
- Big messages the client lists in ``cached_message_hashes`` come back as a ``ref_hash``.
- A fragment with ``run_every`` sends ``auto_rerun``: the CLIENT reruns it on that timer.
- Upload: ``file_urls_request`` -> ``file_urls_response`` -> multipart ``PUT`` of the file to
  the upload URL -> a ``file_uploader_state_value`` widget state -> rerun.

Streamlit's protobufs (``streamlit.proto``, the only part of Streamlit used here) are imported when a
session is made, so that importing this module needs no Streamlit: the core of cnnviz imports
without it, and tests/test_core_purity.py names this module as the one exception.

Why this module is long: it is one protocol, and its parts (connection, run requests, the message
dispatcher, widget state, uploads) only make sense together; split, each would import the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import urljoin

import requests

XSRF_COOKIE = "_streamlit_xsrf"
STREAM_PATH = "/_stcore/stream"
HEALTH_PATH = "/_stcore/health"
# ForwardMsg.ScriptFinishedStatus values
FINISHED_SUCCESSFULLY = 0
FINISHED_WITH_COMPILE_ERROR = 1
FINISHED_EARLY_FOR_RERUN = 2


class SessionError(Exception):
    """What a student would see as broken: an exception, a lost connection, an answer that never came."""


@functools.cache
def _protos() -> SimpleNamespace:
    from streamlit.proto import BackMsg_pb2, Common_pb2, ForwardMsg_pb2, WidgetStates_pb2

    return SimpleNamespace(
        BackMsg=BackMsg_pb2.BackMsg, ForwardMsg=ForwardMsg_pb2.ForwardMsg,
        WidgetState=WidgetStates_pb2.WidgetState, FileURLs=Common_pb2.FileURLs,
        UploadedFileInfo=Common_pb2.UploadedFileInfo,
    )


def http_session() -> requests.Session:
    """HTTP for uploads and images. Like a browser, it tries a request once more when a kept-alive
    connection turns out to be closed by the server (uvicorn closes idle ones after 5 s)."""
    from urllib3.util.retry import Retry

    session = requests.Session()
    retry = Retry(total=1, connect=1, read=1, status=0, other=0, allowed_methods=None, raise_on_status=False)
    session.mount("http://", requests.adapters.HTTPAdapter(max_retries=retry))
    session.mount("https://", requests.adapters.HTTPAdapter(max_retries=retry))
    return session


def websocket_url(base_url: str) -> str:
    """``http://host:port/base`` -> ``ws://host:port/base/_stcore/stream``."""
    scheme, rest = base_url.rstrip("/").split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{STREAM_PATH}"


@dataclass(frozen=True)
class ShownElement:
    """One element on the session's page."""

    kind: str  # the Element's type: "metric", "alert", "radio", "file_uploader", ...
    proto: Any  # the element's own message, e.g. a Metric
    path: tuple[int, ...]  # delta path on the page
    run: int  # the full run (counted by this session) during which it arrived
    fragment_id: str  # "" outside fragments
    received: float  # time.perf_counter() on arrival

    @property
    def text(self) -> str:
        """Every single string field of the element (label, body, text, message ...), joined by spaces."""
        return " ".join(value for item, value in self.proto.ListFields() if isinstance(value, str))

    @property
    def widget_id(self) -> str | None:
        return getattr(self.proto, "id", None) or None

    @property
    def key(self) -> str | None:
        """The widget's user key (ids look like ``$$ID-<hash>-<key>``), or None."""
        widget_id = self.widget_id
        if not widget_id or widget_id.count("-") < 2:
            return None
        key = widget_id.split("-", 2)[2]
        return None if key == "None" else key

    @property
    def format_name(self) -> str:
        """An alert's kind: "ERROR", "WARNING", "INFO", "SUCCESS" ("" for other elements)."""
        if self.kind != "alert":
            return ""
        formats = self.proto.DESCRIPTOR.fields_by_name["format"].enum_type
        return formats.values_by_number[self.proto.format].name


@dataclass(frozen=True)
class RunTiming:
    """perf_counter times of one run: the request sent, the server starting it, the run's end."""

    sent: float
    started: float
    finished: float

    @property
    def start_delay(self) -> float:
        return self.started - self.sent

    @property
    def seconds(self) -> float:
        return self.finished - self.sent


class StreamlitSession:
    """A browser tab without the browser: connect, open a page, set widgets, upload, click, wait.

    Every wait raises :class:`SessionError` when the connection closes or ``timeout`` seconds pass.
    Exceptions the page shows (and compile errors) are collected in ``exceptions``.
    """

    def __init__(self, base_url: str, name: str = "session", timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.timeout = timeout
        self.session_id: str | None = None
        self.page_script_hash = ""
        self.elements: dict[tuple[int, ...], ShownElement] = {}
        self.exceptions: list[str] = []
        self.runs_started = 0  # full runs (not fragment runs) the server started
        self.runs_finished = 0  # the number of the last full run that ran to its end
        self.run_started_at: dict[int, float] = {}
        self.run_finished_at: dict[int, float] = {}
        self.bytes_received = 0
        # When each kind of element first arrived ("progress", and "metric:<label>" for metrics):
        # redraws replace elements, so this keeps the moment a thing was first shown.
        self.first_seen: dict[str, float] = {}
        self._widget_states: dict[str, Any] = {}  # widget id -> WidgetState (values, not triggers)
        self._uploads: dict[str, Any] = {}  # widget id -> FileURLs of the file it holds
        self._cache: dict[str, Any] = {}  # hash -> ForwardMsg the server may refer to
        self._file_url_requests: dict[str, asyncio.Future] = {}
        self._auto_reruns: dict[str, asyncio.Task] = {}
        self._fragment_run = False
        self._changed = asyncio.Condition()
        self._closed_reason: str | None = None
        self._http = http_session()
        self._xsrf: str | None = None
        self._ws: Any = None
        self._reader: asyncio.Task | None = None

    # --- connection -----------------------------------------------------------------------

    async def connect(self) -> None:
        """Get the XSRF cookie and open the websocket, as the frontend does on load."""
        from websockets.asyncio.client import connect

        try:
            response = await asyncio.to_thread(self._http.get, self.base_url + HEALTH_PATH,
                                               timeout=self.timeout)
        except requests.RequestException as err:
            raise SessionError(f"{self.name}: {HEALTH_PATH} failed: {err}") from None
        if response.status_code != 200:
            raise SessionError(f"{self.name}: {HEALTH_PATH} answered HTTP {response.status_code}")
        self._xsrf = self._http.cookies.get(XSRF_COOKIE)
        subprotocols = ["streamlit", *([self._xsrf] if self._xsrf else [])]
        headers = {"Cookie": f"{XSRF_COOKIE}={self._xsrf}"} if self._xsrf else {}
        # A browser sends no pings; the server's own keep-alive is what a class would get.
        self._ws = await connect(websocket_url(self.base_url), subprotocols=subprotocols,
                                 additional_headers=headers, max_size=None, ping_interval=None,
                                 open_timeout=self.timeout, compression="deflate")
        self._reader = asyncio.create_task(self._read(), name=f"{self.name}-reader")

    async def close(self) -> None:
        """Close the tab: stop the timers, close the websocket."""
        self._closed_reason = self._closed_reason or "closed by the client"
        for task in self._auto_reruns.values():
            task.cancel()
        self._auto_reruns.clear()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        self._http.close()

    @property
    def connected(self) -> bool:
        return self._ws is not None and self._closed_reason is None

    # --- runs -----------------------------------------------------------------------------

    async def open_page(self, url_path: str) -> RunTiming:
        """Open a page by its url path (what typing the page's address does) and wait for the run."""
        return await self.run(page_name=url_path)

    async def send_rerun(self, *, page_name: str = "", fragment_id: str = "", auto: bool = False,
                         triggers: tuple[Any, ...] = ()) -> tuple[float, int]:
        """Ask for a run with every widget value set so far; returns (time sent, full runs started before)."""
        message = _protos().BackMsg()
        state = message.rerun_script
        state.page_name = page_name
        state.page_script_hash = "" if page_name else self.page_script_hash
        state.fragment_id = fragment_id
        state.is_auto_rerun = auto
        state.widget_states.widgets.extend([*self._widget_states.values(), *triggers])
        state.cached_message_hashes.extend(self._cache)
        before = self.runs_started
        sent = time.perf_counter()
        await self._send(message)
        return sent, before

    async def wait_run_end(self, sent: float, before: int, what: str = "the end of the run") -> RunTiming:
        """Wait until a full run started after ``before`` ran to its end."""
        await self.wait_until(lambda: self.runs_finished > before, what)
        run = self.runs_finished
        return RunTiming(sent, self.run_started_at.get(run, sent), self.run_finished_at[run])

    async def run(self, *, page_name: str = "", triggers: tuple[Any, ...] = ()) -> RunTiming:
        """Rerun the page with the current widget values and wait until it has finished."""
        sent, before = await self.send_rerun(page_name=page_name, triggers=triggers)
        return await self.wait_run_end(sent, before)

    async def wait_until(
        self, condition: Callable[[], bool], what: str, timeout: float | None = None,
    ) -> None:
        """Wait until ``condition()`` holds (it is checked after every message from the server)."""
        limit = self.timeout if timeout is None else timeout
        deadline = asyncio.get_running_loop().time() + limit
        async with self._changed:
            while not condition():
                if self._closed_reason is not None:
                    raise SessionError(
                        f"{self.name}: connection {self._closed_reason} while waiting for {what}")
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    raise SessionError(f"{self.name}: no {what} within {limit:.0f} s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_for_element(self, match: Callable[[ShownElement], bool], what: str,
                               timeout: float | None = None) -> ShownElement:
        """The first element on the page that matches, once it is there."""
        found: list[ShownElement] = []

        def present() -> bool:
            found[:] = [e for e in self.elements.values() if match(e)]
            return bool(found)

        await self.wait_until(present, what, timeout)
        return min(found, key=lambda e: e.received)

    # --- what is on the page --------------------------------------------------------------

    def find(
        self, kind: str | None = None, text: str | None = None, since_run: int = 0,
    ) -> list[ShownElement]:
        """Elements of a kind and/or containing a text (case-insensitive), in page order."""
        needle = text.lower() if text else None
        return [e for _, e in sorted(self.elements.items())
                if (kind is None or e.kind == kind) and e.run > since_run
                and (needle is None or needle in e.text.lower())]

    def widget(self, key: str) -> ShownElement:
        """The widget with this user key; SessionError when the page does not show it."""
        for element in self.elements.values():
            if element.key == key:
                return element
        raise SessionError(f"{self.name}: the page shows no widget with key {key!r}")

    def widget_keys(self) -> list[str]:
        return sorted(e.key for e in self.elements.values() if e.key)

    # --- acting on widgets ----------------------------------------------------------------

    def set_value(self, key: str, **value: Any) -> None:
        """Set a widget's value for the next run, e.g. ``set_value("k", string_value="Upload")``."""
        widget_id = self.widget(key).widget_id
        self._widget_states[widget_id] = _protos().WidgetState(id=widget_id, **value)

    async def choose(self, key: str, option: str) -> RunTiming:
        """Pick an option of a radio or select box by its shown text, and wait for the run."""
        widget = self.widget(key)
        options = list(widget.proto.options)
        if option not in options:
            raise SessionError(f"{self.name}: {key!r} offers {options}, not {option!r}")
        self.set_value(key, string_value=option)
        return await self.run()

    async def set_slider(self, key: str, *values: float) -> RunTiming:
        """Move a slider (one value, or two for a range) and wait for the run."""
        self.set_value(key, double_array_value={"data": [float(v) for v in values]})
        return await self.run()

    async def click(self, key: str) -> tuple[float, int]:
        """Click a button: one rerun carrying its trigger; returns what :meth:`send_rerun` returns."""
        widget_id = self.widget(key).widget_id
        return await self.send_rerun(triggers=(_protos().WidgetState(id=widget_id, trigger_value=True),))

    async def stage_upload(
        self, key: str, filename: str, data: bytes, content_type: str = "image/png",
    ) -> None:
        """Upload a file into a file uploader (replacing the one it held); the next run sees it."""
        protos = _protos()
        widget_id = self.widget(key).widget_id
        if self.session_id is None:
            raise SessionError(f"{self.name}: no session id yet (open a page first)")
        request_id = uuid.uuid4().hex
        answer = asyncio.get_running_loop().create_future()
        self._file_url_requests[request_id] = answer
        message = protos.BackMsg()
        message.file_urls_request.request_id = request_id
        message.file_urls_request.file_names.append(filename)
        message.file_urls_request.session_id = self.session_id
        await self._send(message)
        try:
            response = await asyncio.wait_for(answer, self.timeout)
        except TimeoutError:
            raise SessionError(f"{self.name}: no upload URL within {self.timeout:.0f} s") from None
        finally:
            self._file_url_requests.pop(request_id, None)
        if response.error_msg or not response.file_urls:
            raise SessionError(f"{self.name}: the server gave no upload URL ({response.error_msg})")
        urls = protos.FileURLs()
        urls.CopyFrom(response.file_urls[0])
        previous = self._uploads.get(widget_id)
        try:
            await asyncio.to_thread(self._put_file, urls, filename, data, content_type, previous)
        except requests.RequestException as err:
            raise SessionError(f"{self.name}: the upload failed: {err}") from None
        self._uploads[widget_id] = urls
        info = protos.UploadedFileInfo(name=filename, size=len(data), file_id=urls.file_id, file_urls=urls)
        self._widget_states[widget_id] = protos.WidgetState(
            id=widget_id, file_uploader_state_value={"uploaded_file_info": [info]})

    def _put_file(self, urls: Any, filename: str, data: bytes, content_type: str, previous: Any) -> None:
        headers = {"X-Xsrftoken": self._xsrf} if self._xsrf else {}
        if previous is not None:  # the browser deletes the file it replaces
            self._http.delete(urljoin(self.base_url + "/", previous.delete_url), headers=headers,
                              timeout=self.timeout)
        response = self._http.put(urljoin(self.base_url + "/", urls.upload_url), headers=headers,
                                  files={"UploadedFile": (filename, data, content_type)},
                                  timeout=self.timeout)
        if response.status_code not in (200, 204):
            raise SessionError(
                f"{self.name}: upload answered HTTP {response.status_code}: {response.text[:200]}")

    def media_urls(self, since_run: int = 0) -> list[str]:
        """Addresses of the images on the page (st.image sends a URL; the browser fetches it)."""
        return [urljoin(self.base_url + "/", image.url) for element in self.find("imgs", since_run=since_run)
                for image in element.proto.imgs if image.url and not image.url.startswith("data:")]

    async def fetch_media(self, since_run: int = 0) -> int:
        """GET the page's images as a browser would; returns the bytes read. SessionError on a failed one."""
        urls = self.media_urls(since_run)
        try:
            return await asyncio.to_thread(self._get_all, urls) if urls else 0
        except requests.RequestException as err:
            raise SessionError(f"{self.name}: fetching the page's images failed: {err}") from None

    async def download(self, key: str) -> bytes:
        """What a download button hands the browser: GET its file; SessionError when that fails."""
        url = urljoin(self.base_url + "/", self.widget(key).proto.url)
        try:
            response = await asyncio.to_thread(self._http.get, url, timeout=self.timeout)
        except requests.RequestException as err:
            raise SessionError(f"{self.name}: the download {key!r} failed: {err}") from None
        if response.status_code != 200:
            raise SessionError(f"{self.name}: the download {key!r} answered HTTP {response.status_code}")
        return response.content

    def _get_all(self, urls: list[str]) -> int:
        total = 0
        for url in urls:
            response = self._http.get(url, timeout=self.timeout)
            if response.status_code != 200:
                raise SessionError(f"{self.name}: image {url} answered HTTP {response.status_code}")
            total += len(response.content)
        return total

    # --- the wire -------------------------------------------------------------------------

    async def _send(self, message: Any) -> None:
        if not self.connected:
            state = self._closed_reason or "not open"
            raise SessionError(f"{self.name}: cannot send, the connection is {state}")
        await self._ws.send(message.SerializeToString())

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        reason = "closed by the server"
        try:
            async for frame in self._ws:
                self.bytes_received += len(frame)
                message = _protos().ForwardMsg()
                message.ParseFromString(frame)
                self._handle(message)
                async with self._changed:
                    self._changed.notify_all()
        except ConnectionClosed as err:
            reason = f"closed by the server ({err})"
        finally:
            self._closed_reason = self._closed_reason or reason
            for answer in self._file_url_requests.values():
                if not answer.done():
                    answer.set_exception(SessionError(f"{self.name}: connection {self._closed_reason}"))
            async with self._changed:
                self._changed.notify_all()

    # One branch per ForwardMsg type this client answers (the module docstring describes them). Its
    # complexity is the number of message types, not tangled logic: split into handlers, each would be
    # a few lines away from the one place that shows which messages are handled and which ignored.
    def _handle(self, message: Any) -> None:  # noqa: C901 - a message dispatcher
        now = time.perf_counter()
        kind = message.WhichOneof("type")
        if kind == "ref_hash":
            cached = self._cache.get(message.ref_hash)
            if cached is None:
                self.exceptions.append(f"{self.name}: the server referred to a message this client never got")
                return
            full = _protos().ForwardMsg()
            full.CopyFrom(cached)
            full.metadata.CopyFrom(message.metadata)
            message, kind = full, full.WhichOneof("type")
        elif message.metadata.cacheable and message.hash:
            self._cache[message.hash] = message

        if kind == "new_session":
            self._on_run_start(message, now)
        elif kind == "delta" and message.delta.WhichOneof("type") == "new_element":
            element = message.delta.new_element
            element_kind = element.WhichOneof("type")
            path = tuple(message.metadata.delta_path)
            shown = ShownElement(element_kind, getattr(element, element_kind), path, self.runs_started,
                                 message.delta.fragment_id, now)
            self.elements[path] = shown
            self.first_seen.setdefault(element_kind, now)
            if element_kind == "metric":
                self.first_seen.setdefault(f"metric:{shown.proto.label}", now)
            if element_kind == "exception":
                error = element.exception
                self.exceptions.append(f"{self.name}: {error.type}: {error.message}")
        elif kind == "delta" and message.delta.WhichOneof("type") == "add_block":
            block = message.delta.add_block  # an expander with a key and on_change is a widget too
            if block.WhichOneof("type") == "expandable" and block.expandable.id:
                path = tuple(message.metadata.delta_path)
                self.elements[path] = ShownElement("expandable", block.expandable, path, self.runs_started,
                                                   message.delta.fragment_id, now)
        elif kind == "script_finished":
            status = message.script_finished
            if status in (FINISHED_SUCCESSFULLY, FINISHED_WITH_COMPILE_ERROR) and not self._fragment_run:
                self.runs_finished = self.runs_started
                self.run_finished_at[self.runs_started] = now
        elif kind == "session_event" and message.session_event.HasField("script_compilation_exception"):
            error = message.session_event.script_compilation_exception
            self.exceptions.append(f"{self.name}: the script did not compile: {error.type}: {error.message}")
        elif kind == "navigation":  # with st.navigation, this names the page that is showing
            self.page_script_hash = message.navigation.page_script_hash or self.page_script_hash
        elif kind == "page_not_found":
            self.exceptions.append(f"{self.name}: page not found: {message.page_not_found.page_name!r}")
        elif kind == "file_urls_response":
            answer = self._file_url_requests.get(message.file_urls_response.response_id)
            if answer is not None and not answer.done():
                answer.set_result(message.file_urls_response)
        elif kind == "auto_rerun":
            self._start_auto_rerun(message.auto_rerun.fragment_id, message.auto_rerun.interval)
        elif kind == "stop_auto_rerun":
            for fragment_id in message.stop_auto_rerun.fragment_ids:
                self._stop_auto_rerun(fragment_id)

    def _on_run_start(self, message: Any, now: float) -> None:
        new_session = message.new_session
        if new_session.HasField("initialize") and new_session.initialize.session_id:
            self.session_id = new_session.initialize.session_id
        fragment_ids = set(message.metadata.run.fragment_ids)
        self._fragment_run = bool(fragment_ids)
        if fragment_ids:  # a fragment redraws only its own elements
            self.elements = {p: e for p, e in self.elements.items() if e.fragment_id not in fragment_ids}
            return
        # A full run redraws the whole page and its fragments announce their timers again.
        self.runs_started += 1
        self.run_started_at[self.runs_started] = now
        self.elements = {}
        for fragment_id in list(self._auto_reruns):
            self._stop_auto_rerun(fragment_id)

    def _start_auto_rerun(self, fragment_id: str, interval: float) -> None:
        self._stop_auto_rerun(fragment_id)

        async def tick() -> None:
            while self.connected:
                await asyncio.sleep(interval)
                with contextlib.suppress(SessionError):
                    await self.send_rerun(fragment_id=fragment_id, auto=True)

        self._auto_reruns[fragment_id] = asyncio.create_task(tick(), name=f"{self.name}-auto-{fragment_id}")

    def _stop_auto_rerun(self, fragment_id: str) -> None:
        task = self._auto_reruns.pop(fragment_id, None)
        if task is not None:
            task.cancel()
