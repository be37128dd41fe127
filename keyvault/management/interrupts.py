"""Stopping long commands cleanly."""

import signal
import threading
from contextlib import contextmanager


@contextmanager
def interrupt_on_sigterm():
    """A stop from a process manager ends the job like Ctrl-C: the batch in flight rolls back,
    everything committed stays, and a rerun continues where it stopped. The previous handler
    is put back afterwards (call_command runs inside longer-lived processes), and signal
    handlers can only be set from the main thread, so elsewhere the job runs without one."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        # None: the previous handler was not installed from Python; the default is closest.
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
