"""Stop the training runs of a session that is gone, not of one that lost the network a moment.

The web layer hands a session's runs over when the session lets go of them (its connection dropped);
the reaper stops them only once the session has stayed away for the whole grace period, and gives
them back if the session returns and asks for them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

POLL_SECONDS = 1.0  # how often the reaper asks whether the parked sessions are back


class Stoppable(Protocol):
    """What the reaper needs of a run: a way to end it (a :class:`~cnnviz.training.jobs.TrainingJob`)."""

    def stop(self) -> None: ...


J = TypeVar("J", bound=Stoppable)


@dataclass
class _Parked(Generic[J]):
    jobs: list[J]
    last_seen: float  # when the session was last known to be connected


@dataclass
class JobReaper(Generic[J]):
    """Runs parked per session id; stopped once ``is_alive(session_id)`` has been False for ``grace_s``.

    Args:
        grace_s: how long a session may stay away (the web server's reconnect window).
        is_alive: True while the session is connected; called from the reaper's thread.
        poll_s: seconds between two looks at the parked sessions.
        clock: monotonic seconds (a test may pass its own).
    """

    grace_s: float
    is_alive: Callable[[str], bool]
    poll_s: float = POLL_SECONDS
    clock: Callable[[], float] = time.monotonic
    _parked: dict[str, _Parked[J]] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    def park(self, session_id: str, jobs: list[J]) -> None:
        """Take over the runs of a session that just let go of them; a session without runs is ignored."""
        if not jobs:
            return
        with self._lock:
            parked = self._parked.setdefault(session_id, _Parked([], self.clock()))
            parked.jobs.extend(jobs)
            parked.last_seen = self.clock()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._watch, name="cnnviz-reaper", daemon=True)
                self._thread.start()

    def reclaim(self, session_id: str) -> list[J]:
        """The runs parked for this session (now back), which the reaper no longer watches."""
        with self._lock:
            parked = self._parked.pop(session_id, None)
        return parked.jobs if parked else []

    def parked(self) -> dict[str, int]:
        """How many runs wait for each session to come back."""
        with self._lock:
            return {session_id: len(p.jobs) for session_id, p in self._parked.items()}

    def reap(self) -> int:
        """One look: stop the runs of sessions away for the whole grace period; returns how many."""
        now = self.clock()
        with self._lock:
            sessions = list(self._parked.items())
        gone: list[str] = []
        for session_id, parked in sessions:
            if self.is_alive(session_id):  # back (maybe without rerunning yet): keep waiting
                parked.last_seen = now
            elif now - parked.last_seen >= self.grace_s:
                gone.append(session_id)
        with self._lock:
            # a session reclaimed meanwhile is no longer ours; one parked again was seen just now
            doomed = [self._parked.pop(s) for s in gone
                      if s in self._parked and now - self._parked[s].last_seen >= self.grace_s]
        for parked in doomed:
            for job in parked.jobs:
                job.stop()  # a queued run leaves the line, a running one ends after its current step
        return sum(len(p.jobs) for p in doomed)

    def _watch(self) -> None:
        while True:
            time.sleep(self.poll_s)
            self.reap()
            with self._lock:
                if not self._parked:
                    self._thread = None
                    return
