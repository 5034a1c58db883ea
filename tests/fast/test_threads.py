"""The batch split over worker threads (``fast/threads.py``) under Ctrl-C: a SIGINT arriving
while the caller waits for its workers surfaces as KeyboardInterrupt only once every worker has
finished writing."""
import os
import signal
import threading
import time

import pytest

from branchynet.fast import threads


def test_ctrl_c_waits_for_the_workers():
    assert threading.current_thread() is threading.main_thread()
    finished = []

    def part(n0, n1):
        if n0 == 1:  # a worker: the interrupt comes while the caller waits for it
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.3)
        finished.append(n0)

    with pytest.raises(KeyboardInterrupt):
        threads.run(part, [(0, 1), (1, 2)])
        time.sleep(1)  # the held interrupt lands here at the latest
    assert sorted(finished) == [0, 1]


def test_the_callers_handler_is_back_and_gets_the_interrupt():
    seen = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    try:
        threads.run(lambda n0, n1: n0 == 1 and os.kill(os.getpid(), signal.SIGINT),
                    [(0, 1), (1, 2)])
        time.sleep(0.2)
        assert seen == [signal.SIGINT]
        assert signal.getsignal(signal.SIGINT) is not threads._interrupts_held
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        assert seen == [signal.SIGINT, signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_results_keep_the_ranges_order():
    assert threads.run(lambda n0, n1: n1 - n0, [(0, 2), (2, 5), (5, 6)]) == [2, 3, 1]
