"""The one error a command raises itself (the API's refusals are `RestError`)."""

from __future__ import annotations


class CommandFailed(Exception):
    """The command could not do all it should; the message says what, for an operator."""
