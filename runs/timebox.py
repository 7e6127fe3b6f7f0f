"""The run's timebox: a wall-clock limit armed around the pack's execution only.

Celery's soft time limit starts with the task and can fire anywhere in it, including
while the receipt is written or the finalize transaction commits. This alarm is armed just
before ``pack.execute`` and disarmed as it returns, so only the pack can be interrupted;
docs/execution.md explains the choice. The same alarm stops a pack whose run is canceled:
another thread (the lease heartbeat) calls ``Timebox.interrupt``, which fires it now.
"""

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

# How soon an interrupt's alarm fires: at once, as far as the pack can tell.
_INTERRUPT_DELAY_SEC = 0.001


class PackInterrupted(BaseException):
    """Raised inside the pack by the timebox's alarm.

    A ``BaseException``, so a pack's own ``except Exception`` cannot swallow it.
    """


class TimeboxExceeded(PackInterrupted):
    """The pack ran out of its timebox."""


class CancelRequested(PackInterrupted):
    """The run was canceled while its pack ran (``Timebox.interrupt``)."""


class Timebox:
    """The limit of one pack execution; a context manager, entered once.

    Uses SIGALRM, which only the main thread receives: the prefork and solo pools run
    tasks there. In any other thread nothing is armed: the caller's elapsed-time check
    after the block is the only limit, and ``interrupt`` only records that it was asked
    (the worker finds the cancel again when it renews its lease after the pack). An alarm
    that was already pending (e.g. pytest-timeout's) is re-armed with its remaining time
    afterwards.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.interrupted = False
        # Guards ``_armed`` between the block's thread and an interrupting one: an alarm
        # is never set after the block disarmed it (the default action would kill the
        # process).
        self._lock = threading.Lock()
        self._armed = False
        self._block: AbstractContextManager[None] | None = None

    def interrupt(self) -> None:
        """Stop the block now with ``CancelRequested``; callable from any thread."""
        with self._lock:
            self.interrupted = True
            if self._armed:
                signal.setitimer(signal.ITIMER_REAL, _INTERRUPT_DELAY_SEC)

    def _expire(self, signum: int, frame: object) -> None:
        # A signal that lands after the block has finished must not raise elsewhere.
        if not self._armed:
            return
        if self.interrupted:
            raise CancelRequested("the run was canceled")
        raise TimeboxExceeded(f"timebox of {self.seconds} s exceeded")

    @contextmanager
    def _armed_in_main_thread(self) -> Iterator[None]:
        previous_handler = signal.signal(signal.SIGALRM, self._expire)
        started = time.monotonic()
        previous_delay, previous_interval = 0.0, 0.0
        try:
            # Armed before the alarm is set: one that fires at once must raise, here too.
            with self._lock:
                self._armed = True
                previous_delay, previous_interval = signal.setitimer(
                    signal.ITIMER_REAL, _INTERRUPT_DELAY_SEC if self.interrupted else self.seconds
                )
            yield
        finally:
            with self._lock:
                signal.setitimer(signal.ITIMER_REAL, 0)
                self._armed = False
            signal.signal(signal.SIGALRM, previous_handler or signal.SIG_DFL)
            if previous_delay:
                remaining = max(previous_delay - (time.monotonic() - started), 0.001)
                signal.setitimer(signal.ITIMER_REAL, remaining, previous_interval)

    def __enter__(self) -> "Timebox":
        if threading.current_thread() is threading.main_thread():
            self._block = self._armed_in_main_thread()
            self._block.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._block is not None:
            self._block.__exit__(*exc_info)


@contextmanager
def timebox(seconds: float) -> Iterator[Timebox]:
    """Raise ``TimeboxExceeded`` in the block if it runs longer than ``seconds``."""
    with Timebox(seconds) as box:
        yield box
