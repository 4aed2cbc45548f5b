"""Exceptions that carry a one-line message meant for the user, never a traceback."""


class DriftcheckError(Exception):
    """A user-facing error: bad input, unreachable resource, wrong environment.

    The CLI prints ``str(error)`` on one line and exits with status 2.
    """


class InventoryError(DriftcheckError):
    """The inventory file is invalid; the message names the file, line and fix."""
