"""State tables: ``(state, event) -> (action, next state)``, and the error for a pair
that is not in one.

The queue pair and the controller each keep their table in a module of its own; this
module only knows how to look a pair up, so that every table fails the same way. It
knows nothing of NVMe, sockets or time.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Generic, TypeVar

S = TypeVar("S", bound=enum.Enum)
E = TypeVar("E", bound=enum.Enum)
A = TypeVar("A", bound=enum.Enum)


class TransitionError(Exception):
    """An event arrived in a state whose table has no entry for it.

    Attributes:
        machine: which table (``"queue pair"``, ``"controller"``).
        state: the state the machine was in; it is left there.
        event: the event that has no entry.
    """

    def __init__(self, machine: str, state: enum.Enum, event: enum.Enum) -> None:
        super().__init__(f"{machine}: event {event.name} is not allowed in state {state.name}")
        self.machine = machine
        self.state = state
        self.event = event


class StateTable(Generic[S, E, A]):
    """A transition table and the name it reports errors under.

    Args:
        machine: a short name for error messages.
        transitions: every allowed ``(state, event)`` pair with its action and next state.
    """

    __slots__ = ("machine", "transitions")

    def __init__(self, machine: str, transitions: Mapping[tuple[S, E], tuple[A, S]]) -> None:
        self.machine = machine
        self.transitions = dict(transitions)

    def step(self, state: S, event: E) -> tuple[A, S]:
        """The action to take and the state to enter.

        Raises:
            TransitionError: the pair is not in the table.
        """
        found = self.transitions.get((state, event))
        if found is None:
            raise TransitionError(self.machine, state, event)
        return found
