"""runs.timebox: the alarm that bounds the pack and nothing else."""

import signal
import threading
import time

import pytest

from runs.timebox import TimeboxExceeded, timebox


def test_timebox_interrupts_a_pack_that_overruns():
    started = time.monotonic()

    with pytest.raises(TimeboxExceeded), timebox(0.2):
        time.sleep(5)

    assert time.monotonic() - started < 1


def test_timebox_gets_through_a_pack_that_swallows_every_exception():
    swallowed = []

    def careless_pack() -> None:
        try:
            time.sleep(5)
        except Exception as exc:
            swallowed.append(exc)

    with pytest.raises(TimeboxExceeded), timebox(0.2):
        careless_pack()

    assert swallowed == []


def test_timebox_does_not_fire_after_the_block_finished():
    with timebox(0.1):
        pass

    time.sleep(0.3)  # no TimeboxExceeded here


def test_timebox_restores_an_alarm_that_was_pending():
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with timebox(5):
            pass
        time.sleep(1)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    assert fired == [signal.SIGALRM]


def test_timebox_outside_the_main_thread_arms_nothing():
    outcome = []

    def work() -> None:
        with timebox(0.1):
            time.sleep(0.3)
        outcome.append("finished")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()

    assert outcome == ["finished"]
