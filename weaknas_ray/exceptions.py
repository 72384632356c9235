"""The project's exception hierarchy: every error a user can cause names what was wrong and where."""


class WeakNASError(Exception):
    """Base class of every error raised on purpose by weaknas-ray."""


class ConfigError(WeakNASError, ValueError):
    """A configuration value is unknown, of the wrong type or out of range (the message names the key)."""


class BenchmarkDataError(WeakNASError):
    """A benchmark file is missing, corrupt, truncated or of the wrong schema (the message names the file)."""


class UnknownArchitectureError(WeakNASError, KeyError):
    """An architecture is not in the search space (the message shows what was received)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class NotFittedError(WeakNASError, RuntimeError):
    """A predictor was asked to predict before ``fit``."""


class RunStateError(WeakNASError):
    """A saved run state cannot be resumed (the message names the file and what to do)."""


class OutputWriteError(RunStateError):
    """A file of a run's output could not be written (disk full, quota, a read-only or vanished folder).

    Args:
        path: the file.
        reason: the OS's words (``strerror``).
        fix: what to do; set by whoever knows where the write failed (the finished repeats kept, the
            command to rerun).
    """

    def __init__(self, path, reason: str, fix: str = "free space (or make the folder writable), then rerun the same command"):
        super().__init__(path, reason, fix)
        self.path, self.reason, self.fix = path, reason, fix

    def __str__(self) -> str:
        return f"cannot write {self.path} ({self.reason}); {self.fix}"


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM (what ``timeout``, Slurm and Kubernetes send): handled like Ctrl-C."""


class _Sigterm:
    """Whether SIGTERM arrived: Ray turns an interrupt raised while its driver waits (``ray.wait``) into a
    plain KeyboardInterrupt, so the exception's type alone cannot tell SIGTERM from Ctrl-C."""

    received = False


def terminated_by(exc: BaseException) -> bool:
    """True when ``exc`` (a KeyboardInterrupt) unwinds from SIGTERM rather than Ctrl-C."""
    return isinstance(exc, Terminated) or _Sigterm.received


def interrupt_on_sigterm() -> None:
    """Make SIGTERM raise :class:`Terminated` in the main thread, so it unwinds like Ctrl-C (workers
    stopped, finished repeats kept). Ray replaces the handler when the driver connects: call it again then."""
    import signal
    import threading

    def handler(signum, frame):
        _Sigterm.received = True
        raise Terminated()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
