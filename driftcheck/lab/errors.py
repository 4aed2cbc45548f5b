"""The lab's one exception type and its precondition check."""

from __future__ import annotations

import os

from driftcheck.errors import DriftcheckError

__all__ = ["LabError", "require_root"]


class LabError(DriftcheckError):
    """A lab operation failed; the message is one user-readable line (so the CLI
    reports it like any other user-facing error)."""


def require_root() -> None:
    """Raise :class:`LabError` unless the effective user is root.

    Network namespaces, mount namespaces and overlay mounts all need
    CAP_SYS_ADMIN in the initial user namespace.
    """
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network and mount namespaces); run as root")
