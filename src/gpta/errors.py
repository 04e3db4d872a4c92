"""The one exception type for mistakes a user can fix.

Anything raised as :class:`GptaUserError` is shown by the CLI as a single
message (no traceback) and ends the command with exit status 2. Messages name
what is wrong and where (file, row, column or option) and say how to fix it.
"""

from __future__ import annotations


class GptaUserError(Exception):
    """A mistake in the user's input, configuration or data."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message}\n  fix: {hint}")
