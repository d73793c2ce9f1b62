"""Engine calls from the console: always async workers on the app's loop, never threads.

``engine_work`` is ``textual.work`` for methods that await the engine. A failure does not end
the app and is not lost: it goes to the App's one error handler (``ConsoleContext.show_error``),
which turns an engine error into a toast (or a message by the field, for the form that asked)
and anything unexpected into an error dialog. Engine coroutines must run on the loop that opened
the engine, which is why a thread worker is never used here.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from textual import work
from textual.dom import DOMNode

__all__ = ["engine_work"]

P = ParamSpec("P")
R = TypeVar("R")
N = TypeVar("N", bound=DOMNode)


def engine_work(
    *, exclusive: bool = False, group: str = "engine", what: str | None = None
) -> Callable[[Callable[Concatenate[N, P], Awaitable[R]]], Callable[Concatenate[N, P], Any]]:
    """Run the decorated coroutine method as an async worker whose errors reach the error handler.

    ``what`` names the action in the error message ("cancel the payment").
    """

    def decorator(method: Callable[Concatenate[N, P], Awaitable[R]]) -> Callable[Concatenate[N, P], Any]:
        action = what or method.__name__.replace("_", " ")

        @functools.wraps(method)
        async def guarded(self: N, *args: P.args, **kwargs: P.kwargs) -> R | None:
            try:
                return await method(self, *args, **kwargs)
            except Exception as exc:  # every failure goes to the one handler, none ends the app
                report = getattr(self.app, "show_error", None)
                if report is None:
                    raise
                report(exc, action=action, source=self)
                return None

        return work(guarded, exclusive=exclusive, group=group, exit_on_error=False)

    return decorator
