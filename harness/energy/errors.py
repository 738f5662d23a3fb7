"""Energy errors: each says what is wrong and how to fix it. Which ones skip and which fail
is decided by the suite: a monitor that cannot run here skips, a measurement that went wrong
fails, and neither ever turns into a silent zero."""

from harness.errors import HarnessError


class EnergyError(HarnessError):
    """An energy measurement went wrong (the suite fails)."""


class MonitorUnavailable(EnergyError):
    """No energy monitor can run for this board here (the suite skips, saying why)."""


class NoPowerModel(MonitorUnavailable):
    """The board has no [power] table, so there is nothing to model energy from."""


class NoMarkerEdges(EnergyError):
    """The instrument's sample stream holds no complete marker pulse."""


class WindowTooShort(EnergyError):
    """A marker window holds too few samples for the instrument's sample rate."""
