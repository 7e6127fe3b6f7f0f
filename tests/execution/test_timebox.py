"""runs.timebox: the alarm that bounds the pack and nothing else."""

import signal
import threading
import time

import pytest

from runs.timebox import CancelRequested, Timebox, TimeboxExceeded, timebox


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


def test_an_interrupt_from_another_thread_stops_the_block_with_cancel_requested():
    box = Timebox(30)
    entered = threading.Event()
    interrupter = threading.Thread(target=lambda: (entered.wait(5), box.interrupt()))
    interrupter.start()
    swallowed = []

    def careless_pack() -> None:
        entered.set()
        try:
            time.sleep(30)
        except Exception as exc:  # a careless pack cannot keep running either
            swallowed.append(exc)

    with pytest.raises(CancelRequested), box:
        careless_pack()
    interrupter.join()

    assert (box.interrupted, swallowed) == (True, [])


def test_an_interrupt_before_the_block_stops_it_as_it_starts():
    box = Timebox(30)
    box.interrupt()

    with pytest.raises(CancelRequested), box:
        time.sleep(30)


def test_an_interrupt_after_the_block_finished_sets_no_alarm():
    box = Timebox(30)
    with box:
        pass

    box.interrupt()
    time.sleep(0.1)  # the default SIGALRM action would end the test process here

    # No alarm of ours is pending (pytest-timeout's own may be, far away).
    remaining, _ = signal.getitimer(signal.ITIMER_REAL)
    assert remaining == 0 or remaining > 1


def test_outside_the_main_thread_an_interrupt_is_only_recorded():
    box = Timebox(30)
    outcome = []

    def work() -> None:
        with box:
            box.interrupt()
        outcome.append(box.interrupted)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()

    assert outcome == [True]
