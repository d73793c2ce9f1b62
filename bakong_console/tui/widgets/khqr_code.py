"""``KHQRCode``: a KHQR drawn in the terminal for a phone to scan.

The drawing is ``engine.khqr.render_terminal``: half blocks that fill the *light* modules. The
widget paints them white on black, so the code reads dark-on-light whatever the theme. When the
widget is shorter than the drawing (an 80×24 terminal), the quiet zone above and below is trimmed
from four modules to two, the least a phone camera tolerates, before anything else is cut.
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from engine.khqr import render_terminal

__all__ = ["KHQRCode"]

#: Rows of quiet zone (two modules each) above and below the code that may be trimmed.
_TRIMMABLE_ROWS = 1


class KHQRCode(Widget):
    """Shows one KHQR string (or nothing)."""

    DEFAULT_CSS = """
    KHQRCode {
        width: auto;
        height: auto;
        color: #ffffff;
        background: #000000;
    }
    """

    qr: reactive[str | None] = reactive(None, layout=True)
    caption: reactive[str | None] = reactive(None, layout=True)

    def __init__(self, qr: str | None = None, *, caption: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._lines: list[str] = []
        self._code_rows = 0
        self.set_reactive(KHQRCode.qr, qr)
        self.set_reactive(KHQRCode.caption, caption)
        self._draw()

    def _draw(self) -> None:
        if not self.qr:
            self._lines, self._code_rows = [], 0
            return
        self._code_rows = render_terminal(self.qr).count("\n") + 1
        self._lines = render_terminal(self.qr, caption=self.caption).split("\n")

    def watch_qr(self) -> None:
        self._draw()

    def watch_caption(self) -> None:
        self._draw()

    @property
    def code_height(self) -> int:
        """Lines of the full drawing (code, quiet zone and caption)."""
        return len(self._lines)

    def get_content_width(self, container, viewport) -> int:  # type: ignore[no-untyped-def]
        return max((len(line) for line in self._lines), default=0)

    def get_content_height(self, container, viewport, width: int) -> int:  # type: ignore[no-untyped-def]
        return len(self._visible_lines(container.height))

    def _visible_lines(self, room: int) -> list[str]:
        code, caption = self._lines[: self._code_rows], self._lines[self._code_rows :]
        trim = 0
        while trim < _TRIMMABLE_ROWS and len(code) - 2 * trim + len(caption) > room:
            trim += 1
        if trim:
            code = code[trim:-trim]
        if len(code) + len(caption) > room:
            caption = []
        return code + caption

    def render(self) -> Text:
        return Text("\n".join(self._visible_lines(self.size.height or len(self._lines))), no_wrap=True, end="")
