"""Ctrl-C and a scheduler's SIGTERM stop training cleanly, at the end of a step, with a checkpoint of that step.

Slurm, Kubernetes and ModelArts send SIGTERM some seconds before they kill a job; a user sends SIGINT with Ctrl-C.
Either one only records the request here; the trainer finishes the step it is in, saves, and exits with 128 + the
signal's number (130 for SIGINT, 143 for SIGTERM), as a shell reports a process ended by that signal. Further
signals while the checkpoint is written are absorbed, so they cannot cut it short (the write is atomic anyway,
see src/run/checkpoint.py). SIGKILL cannot be caught: resume covers it.

Why signals are blocked rather than handled: MindSpore's runtime installs native SIGINT/SIGTERM handlers of its
own while it runs (they end the process with exit code 143 and no checkpoint). train.py therefore blocks both
signals before MindSpore starts any thread (`block_stop_signals`), every thread inherits that mask, and one thread
of ours takes them with sigwait: no handler of anyone's runs, and the signal's identity is kept.
"""
import signal
import threading

SIGNALS = {signal.SIGINT, signal.SIGTERM}


def block_stop_signals():
    """Block SIGINT and SIGTERM in this thread and in every thread started after it (call before importing
    MindSpore); a StopRequest then receives them."""
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)


class StopRequest:
    """A context manager that turns SIGINT/SIGTERM into `signum` (the first one received), to be polled between
    steps. With the signals blocked (block_stop_signals) a daemon thread waits for them; otherwise, in the main
    thread, Python handlers record them (library use); elsewhere it does nothing."""

    def __init__(self):
        self.signum = None
        self._previous = {}

    def __enter__(self):
        if SIGNALS <= signal.pthread_sigmask(signal.SIG_BLOCK, []):
            threading.Thread(target=self._wait, name="stop-signals", daemon=True).start()
        elif threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._record)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False

    def _wait(self):
        while True:  # every later signal is absorbed here too
            self._record(signal.sigwait(SIGNALS), None)

    def _record(self, signum, _frame):
        if self.signum is None:
            self.signum = signum

    @property
    def exit_code(self):
        return 128 + int(self.signum)

    @property
    def name(self):
        return signal.Signals(self.signum).name
