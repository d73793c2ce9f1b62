"""How the console writes payment facts for people: status badges, amounts, ages and countdowns
(times of day: ``bakong_console.times``, shared with the CLI).

Everything here is pure (no Textual, no I/O) so widgets can call it while rendering a line.
"""

from __future__ import annotations

from datetime import datetime

from rich.style import Style
from rich.text import Text

from engine.money import format_amount, to_major
from engine.records import PaymentStatus

__all__ = [
    "STATUS_STYLES",
    "amount_number",
    "amount_text",
    "countdown",
    "endpoint_answer",
    "short_age",
    "status_badge",
    "took",
]

#: One look per status, the same on the board, the cashier screen and the detail screen.
STATUS_STYLES: dict[str, Style] = {
    PaymentStatus.PENDING.value: Style.parse("bold black on yellow"),
    PaymentStatus.PAID.value: Style.parse("bold black on green"),
    PaymentStatus.PAID_LATE.value: Style.parse("bold black on dark_orange"),
    PaymentStatus.NEEDS_REVIEW.value: Style.parse("bold white on red"),
    PaymentStatus.TIMEOUT.value: Style.parse("white on grey35"),
    PaymentStatus.CANCELLED.value: Style.parse("grey70 on grey23"),
    PaymentStatus.FAILED.value: Style.parse("bold white on dark_red"),
    PaymentStatus.UNTRACKABLE.value: Style.parse("italic grey70 on grey23"),
}


def status_badge(status: str, width: int | None = None) -> Text:
    """The status as a coloured badge, centred in ``width`` cells when given."""
    label = status if width is None else status.center(width)[:width]
    return Text(label, style=STATUS_STYLES.get(status, Style()))


def amount_number(amount_minor: int, currency: str) -> str:
    """The amount without its currency code: '12.50', '40,000'."""
    major = to_major(amount_minor, currency)
    if currency == "KHR":
        return f"{int(major):,}"
    return f"{major:,.2f}"


def amount_text(amount_minor: int, currency: str) -> str:
    """'12.50 USD', '40,000 KHR'."""
    return format_amount(amount_minor, currency)


def short_age(since: datetime, now: datetime) -> str:
    """How long ago, in at most five characters: '42s', '14m', '3h05', '12d'."""
    seconds = max(0, int((now - since).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 24:
        return f"{hours}h{minutes % 60:02d}"
    return f"{hours // 24}d"


def countdown(until: datetime, now: datetime) -> str:
    """Time left as 'm:ss' (or 'h:mm:ss'); '0:00' once passed."""
    seconds = max(0, int((until - now).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def endpoint_answer(status_code: int | None, error: str | None, *, nothing: str = "no answer") -> str:
    """What a webhook endpoint answered: 'HTTP 503', else the error ('timed out'), else ``nothing``."""
    if status_code is not None:
        return f"HTTP {status_code}"
    return error or nothing


def took(duration_ms: float) -> str:
    """How long an answer took, as people care about it: '<1 s' or '2.4 s'."""
    if duration_ms < 1000:
        return "<1 s"
    return f"{duration_ms / 1000:.1f} s"
