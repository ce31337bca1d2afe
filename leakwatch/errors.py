"""The edge's errors, and which errors anywhere carry a message meant for the user."""

from __future__ import annotations

from analysis.errors import AnalysisError
from collectors.base import CollectorError
from warehouse.errors import WarehouseError


class LeakwatchError(Exception):
    """A problem of the command line, configuration or scheduler the user can act on."""


class ConfigError(LeakwatchError):
    """The configuration or environment is wrong; the message names what and where."""


class DaemonLockError(LeakwatchError):
    """Another daemon already works on this warehouse."""


class CollectionBusyError(LeakwatchError):
    """Another process is collecting the same platform into this warehouse right now."""


# One base per package: an error of these types is printed as one line (exit 1), without traceback.
USER_ERRORS: tuple[type[Exception], ...] = (LeakwatchError, CollectorError, WarehouseError, AnalysisError)


def is_user_error(exc: BaseException) -> bool:
    return isinstance(exc, USER_ERRORS)
