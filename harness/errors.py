"""Errors a user can act on: each names the problem and the fix, and is shown without a traceback."""


class HarnessError(Exception):
    """A problem the user can fix; the message says what is wrong and how to fix it."""


class BoardError(HarnessError):
    """Unknown board, or a board file that is malformed."""


class ToolMissing(HarnessError):
    """An external tool (compiler, emulator, uploader) is not installed."""


class BuildError(HarnessError):
    """The firmware did not compile or link."""


class NotBuildable(BuildError):
    """This variant cannot be built for this architecture (e.g. C++ where there is no C++ compiler)."""


class DoesNotFit(HarnessError):
    """The firmware is larger than the board's flash or RAM."""


class ProtocolError(HarnessError):
    """The DUT did not answer correctly over the wire, even after retries."""


class BackendError(HarnessError):
    """A backend could not start, flash or reach the DUT."""
