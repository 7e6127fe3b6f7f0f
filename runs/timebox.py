"""The run's timebox: a wall-clock limit armed around the pack's execution only.

Celery's soft time limit starts with the task and can fire anywhere in it, including
while the receipt is written or the finalize transaction commits. This alarm is armed just
before ``pack.execute`` and disarmed as it returns, so only the pack can be interrupted;
docs/execution.md explains the choice.
"""

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class TimeboxExceeded(BaseException):
    """Raised inside the pack when its timebox runs out.

    A ``BaseException``, so a pack's own ``except Exception`` cannot swallow it.
    """


@contextmanager
def timebox(seconds: float) -> Iterator[None]:
    """Raise ``TimeboxExceeded`` in the block if it runs longer than ``seconds``.

    Uses SIGALRM, which only the main thread receives: the prefork and solo pools run
    tasks there. In any other thread nothing is armed, and the caller's elapsed-time
    check after the block is the only limit. An alarm that was already pending (e.g.
    pytest-timeout's) is re-armed with its remaining time afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    armed = True

    def expire(signum: int, frame: object) -> None:
        # A signal that lands after the block has finished must not raise elsewhere.
        if armed:
            raise TimeboxExceeded(f"timebox of {seconds} s exceeded")

    previous_handler = signal.signal(signal.SIGALRM, expire)
    started = time.monotonic()
    previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        armed = False
        signal.signal(signal.SIGALRM, previous_handler or signal.SIG_DFL)
        if previous_delay:
            remaining = max(previous_delay - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, remaining, previous_interval)
