"""Signals during a command: the first Ctrl-C or SIGTERM stops a run at its next evaluation (or at once before it has \
begun), a second aborts; SIGTERM elsewhere ends the command with the temporary files removed."""
import signal

from ..files.log import stderr

EXIT_CODES = {"": 0, "SIGINT": 130, "SIGTERM": 143}       # a run's `interrupted` -> the exit status


class Stopper:
    """Signal handling for a run: the first Ctrl-C or SIGTERM once the run polls it (its first evaluation) asks the
    run to stop at its next evaluation (it then writes the best image so far); a second one aborts at once, and so
    does the first before the run has begun (reading files, loading weights, connecting to a cluster: there is
    nothing to write yet, and a setup step such as a connect may never reach a poll)."""

    def __init__(self, then="writing the best image so far"):
        self.reason, self.old, self.then, self.polled = "", {}, then, False

    def __call__(self):
        self.polled = True
        return self.reason

    def _handle(self, signum, frame):
        if self.reason or not self.polled:
            raise KeyboardInterrupt() if signum == signal.SIGINT else Terminated()
        self.reason = signal.Signals(signum).name
        stderr(f"\nvggnumpy: {self.reason}: stopping after this iteration and {self.then} (again to abort at once)")

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            self.old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, h in self.old.items():
            signal.signal(s, h)


class Terminated(BaseException):
    """SIGTERM, raised where the program is, so that every temporary file is removed on the way out."""


def _terminate(signum, frame):
    raise Terminated()
