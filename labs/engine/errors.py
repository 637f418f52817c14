"""Errors the CLI turns into one line on stderr and exit status 2."""


class LabError(Exception):
    """Bad input or a missing prerequisite: a user-facing message, never a traceback."""


class StartupError(LabError):
    """A part of the topology failed to start (message names the part and its log)."""
