"""Errors a user fixes outside the code (a missing tool, a busy port, a wrong path)."""


class SetupError(Exception):
    """One line that says what is wrong and how to fix it; CLIs print it without a traceback."""
