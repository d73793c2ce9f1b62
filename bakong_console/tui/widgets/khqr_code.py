"""``KHQRCode``: a KHQR drawn in the terminal for a phone to scan, and ``keep_toasts_off``, which
keeps its screen's toasts beside it.

The drawing is ``engine.khqr.render_terminal``: half blocks that fill the *light* modules, with
the four-module quiet zone a phone camera needs all round. The widget paints them white on black,
so the code reads dark-on-light whatever the theme. A code that would not scan is never drawn:
when the space is smaller than the whole drawing (an 80×24 terminal), the widget says so instead,
and what to do (``too_small``), rather than trim the quiet zone or cut modules off. The caption
under the code is dropped before that.
"""

from __future__ import annotations

import textwrap

from rich.text import Text
from textual.css.query import NoMatches
from textual.reactive import reactive
from textual.widget import Widget

from engine.khqr import render_terminal

__all__ = ["KHQRCode", "keep_toasts_off"]

#: The longest line of the message shown instead of a code that does not fit.
_NOTICE_WIDTH = 38


class KHQRCode(Widget):
    """Shows one KHQR string (or nothing), whole or not at all."""

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

    def __init__(
        self,
        qr: str | None = None,
        *,
        caption: str | None = None,
        too_small: str = "Enlarge the terminal to show it.",
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        #: What to do when the code does not fit, said after how much room it needs.
        self.too_small = too_small
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

    @property
    def code_rows(self) -> int:
        """Lines of the code with its quiet zone, without the caption: the least it needs."""
        return self._code_rows

    @property
    def code_width(self) -> int:
        """Columns of the code with its quiet zone."""
        return len(self._lines[0]) if self._lines else 0

    @property
    def showing_code(self) -> bool:
        """True when the whole code is on screen (quiet zone included) for a phone to scan."""
        return bool(self._lines) and self._fits(self.size.width, self.size.height)

    def _fits(self, width: int, height: int) -> bool:
        return self.code_rows <= height and self.code_width <= width

    def _notice(self, width: int) -> list[str]:
        text = f"This QR needs {self.code_width}×{self.code_rows} cells to scan. {self.too_small}"
        return textwrap.wrap(text, max(10, min(width, _NOTICE_WIDTH)))

    def get_content_width(self, container, viewport) -> int:  # type: ignore[no-untyped-def]
        if not self._lines:
            return 0
        if self._fits(container.width, container.height):
            return max(len(line) for line in self._lines)
        return max(len(line) for line in self._notice(container.width))

    def get_content_height(self, container, viewport, width: int) -> int:  # type: ignore[no-untyped-def]
        if not self._lines:
            return 0
        if self._fits(container.width, container.height):
            return self.code_height if self.code_height <= container.height else self.code_rows
        return len(self._notice(width))

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        if not self._lines:
            return Text("")
        if not self._fits(width, height):
            return Text("\n".join(self._notice(width)), style="bold", end="")
        lines = self._lines if self.code_height <= height else self._lines[: self.code_rows]
        return Text("\n".join(lines), no_wrap=True, end="")


def keep_toasts_off(code: KHQRCode) -> None:
    """Lay the toasts of ``code``'s screen out beside the code, on its wider side, so that none
    ever covers it (a toast over a QR stops phones scanning it). Call it once the screen is laid
    out; with no code drawn the toasts go back where Textual puts them."""
    screen = code.screen
    try:
        # Textual's own id for the toasts of a screen.
        rack = screen.query_one("#textual-toastrack")
    except NoMatches:
        return
    region = code.region
    width = screen.size.width
    if not code.showing_code or not region.width:
        rack.styles.margin = (0, 0, 1, 0)
        rack.styles.width = "1fr"
        rack.remove_class("-beside-qr")
        return
    right, left = width - region.right - 1, region.x - 1
    if right >= left:
        rack.styles.margin = (0, 0, 1, region.right + 1)
    else:
        rack.styles.margin = (0, 0, 1, 0)
    rack.styles.width = max(1, max(right, left))
    rack.add_class("-beside-qr")
