"""The KHQR card: a KHQR drawn as the card payers know from the NBC KHQR guidelines; its layout and SVG.

The card is 20:29 (400 x 580 units): a red header band with "KHQR" in white and a small tail on
its right, the merchant name (and the name in the alternate language when the KHQR's language
template, tag 64, carries one), the amount and currency exactly as the KHQR carries them
("12.50 USD", "20,000 KHR"; nothing for a static KHQR without an amount), a dashed rule, the QR
code with a 4-module quiet zone and a currency mark ("$" or the riel sign) in its centre, and an
expiry line: the caller's ``expires_at``, else the expiration timestamp of a dynamic KHQR (tag 99,
sub-tag 01), in Asia/Phnom_Penh time.

Everything drawn comes from the KHQR string itself (and ``expires_at``), which is validated first
(structure, CRC and field rules; not its expiry: whether an expired payment's card may still be
shown is the caller's decision, and drawing never reads the clock). Output is a pure function of
the input, so the same KHQR always gives the same bytes (stable ETags): the PNG carries no
timestamp or other metadata chunk.

The QR matrix is ``render.qr_matrix``'s (error-correction level M). The currency mark covers a
disc 14% of the symbol's width across in its centre, about 1.5% of its modules, a handful of
codewords out of the roughly 15% that level M restores. Measured with ZXing on 600-pixel cards:
a blur of up to 0.45 module still reads with or without the mark, and with 1.5% of the modules
flipped at random 71% of cards still read against 79% without a mark (18%-wide mark: 58%). The
tests decode the PNG across QR versions, also shrunk and blurred. The SVG draws every module
anyway, the mark on top of them.

Fonts. The PNG is ``engine.khqr.card_png``'s. The SVG names font-family lists and lets the viewer draw the text (Khmer included: any
system with a Khmer font shows the alternate name). The PNG draws Latin text with Pillow's built-in
scalable font (the same on every machine) and Khmer text with a Khmer font found on the system
(``khmer_font_path``: Noto Sans Khmer or the Khmer OS fonts, Debian packages ``fonts-noto-core``
or ``fonts-khmeros``). Without one the PNG is Latin-only: the alternate-language name is left out
(as is one in a script neither font draws) and a KHR card shows no centre mark (the riel sign is
a Khmer character). The merchant name is always drawn.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Final
from xml.sax.saxutils import escape, quoteattr

from engine.clock import PHNOM_PENH
from engine.errors import InvalidInput
from engine.khqr.decode import decode
from engine.khqr.jsnum import js_number
from engine.khqr.render import QUIET_ZONE, dark_module_path, qr_matrix
from engine.khqr.verify import validate

__all__ = [
    "CARD_HEIGHT",
    "CARD_WIDTH",
    "DEFAULT_PNG_WIDTH",
    "CardContent",
    "card_content",
    "render_card_svg",
]

#: The card's layout units (the SVG viewBox); the PNG is scaled from them.
CARD_WIDTH: Final = 400
CARD_HEIGHT: Final = 580
#: PNG width when the caller gives none: 6 to 8 pixels per module for a typical dynamic KHQR.
DEFAULT_PNG_WIDTH: Final = 600
MAX_PNG_WIDTH: Final = 4000

KHQR_RED: Final = "#E1232E"
TEXT = "#000000"
SOFT_TEXT = "#4D4D4D"
RULE = "#BDBDBD"

# Layout, in card units.
RADIUS = 16
HEADER = 64  # height of the red band
TAIL = 24  # the triangle hanging below the band's right end
MARGIN = 32  # left and right margin of the text and the QR box
_TEXT_TOP, _TEXT_BOTTOM = HEADER, 184  # the band the name and amount lines are centred in
RULE_Y = 192
QR_TOP = 200
QR_BOX = CARD_WIDTH - 2 * MARGIN  # the QR with its quiet zone fills a square this wide
EXPIRY_BASELINE = 562
TITLE_SIZE = 30
#: The currency mark's outer (white) and inner (dark) disc, as fractions of the symbol's width.
MARK_OUTER, MARK_INNER = 0.14, 0.11

_LATIN_FAMILY = "Aileron, 'Helvetica Neue', Helvetica, Arial, sans-serif"
_KHMER_FAMILY = "'Noto Sans Khmer', 'Khmer OS System', 'Khmer OS', 'Khmer OS Battambang', sans-serif"
CURRENCY_MARKS = {"USD": "$", "KHR": "\u17db"}  # the riel sign
#: Glyph size against the dark disc's radius: the riel sign is narrow and tall.
MARK_GLYPH = {"USD": 1.2, "KHR": 1.6}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Line:
    """One text line under the header: what it says, how big, and whether it is the alternate-language name."""

    text: str
    size: int
    height: int
    bold: bool = False
    alternate: bool = False
    colour: str = TEXT


@dataclass(frozen=True, slots=True)
class CardContent:
    """What a card shows, read from a validated KHQR (the layout-independent part of a card)."""

    merchant_name: str
    #: The merchant name in the alternate language (tag 64, sub-tag 01), or None.
    merchant_name_alternate: str | None
    currency: str  # "KHR" or "USD"
    #: "12.50 USD", "20,000 KHR"; None for a KHQR without an amount.
    amount: str | None
    #: "Expires 2025-01-01 14:30 (Asia/Phnom_Penh)", or None.
    expiry: str | None
    #: The QR modules (True = dark), without the quiet zone.
    matrix: tuple[tuple[bool, ...], ...]


def is_khmer(ch: str) -> bool:
    """Whether ``ch`` is in the Khmer or Khmer Symbols block."""
    return "\u1780" <= ch <= "\u17ff" or "\u19e0" <= ch <= "\u19ff"


def _printable(text: str | None) -> str:
    """``text`` without control characters and lone surrogates (not drawable, and not XML)."""
    if not text:
        return ""
    return "".join(ch for ch in text if ch.isprintable() and not "\ud800" <= ch <= "\udfff").strip()


def _expiry_text(expires_at: datetime) -> str:
    local = expires_at.astimezone(PHNOM_PENH)
    return f"Expires {local:%Y-%m-%d %H:%M} (Asia/Phnom_Penh)"


def card_content(khqr: str, *, expires_at: datetime | None = None) -> CardContent:
    """Read what the card of ``khqr`` shows; raises ``KHQRError`` / ``InvalidInput`` for bad input.

    ``expires_at`` (timezone-aware) overrides the KHQR's own expiration timestamp.
    """
    if not isinstance(khqr, str) or not khqr:
        raise InvalidInput("nothing to draw: the KHQR string is empty", field="qr")
    if expires_at is not None and (not isinstance(expires_at, datetime) or expires_at.utcoffset() is None):
        raise InvalidInput("expires_at must be a timezone-aware datetime", field="expires_at")
    # now_ms=0: every field rule is checked but expiry is not judged (see the module docstring).
    validate(khqr, now_ms=0)
    from engine.money import CURRENCY_BY_NUMERIC, format_amount, to_minor

    fields = decode(khqr)
    currency = CURRENCY_BY_NUMERIC[fields["transaction_currency"] or ""]
    amount = None
    raw_amount = fields["transaction_amount"]
    if raw_amount:
        try:
            minor = to_minor(Decimal(raw_amount), currency)
        except InvalidOperation:
            raise InvalidInput(f"the KHQR amount {raw_amount!r} is not a number", field="qr") from None
        amount = format_amount(minor, currency) if minor else None
    if expires_at is None and fields["point_of_initiation_method"] == "12" and fields["expiration_timestamp"]:
        # Read as the SDK reads it (validate accepted it): JavaScript's Number() of the text.
        expiration_ms = js_number(fields["expiration_timestamp"])
        if expiration_ms is not None and math.isfinite(expiration_ms):
            expires_at = _EPOCH + timedelta(milliseconds=int(expiration_ms))
    return CardContent(
        merchant_name=_printable(fields["merchant_name"]),
        merchant_name_alternate=_printable(fields["merchant_name_alternate_language"]) or None,
        currency=currency,
        amount=amount,
        expiry=_expiry_text(expires_at) if expires_at is not None else None,
        matrix=_matrix_of(khqr),
    )


@lru_cache(maxsize=64)
def _matrix_of(khqr: str) -> tuple[tuple[bool, ...], ...]:
    """The QR modules, kept for the last few KHQRs: the matrix is most of a card's cost (the
    ``qrcode`` library tries all eight masks in Python), and one payment's card is asked for
    again (PNG and SVG, page reloads, the customer display)."""
    return tuple(tuple(row) for row in qr_matrix(khqr))


def text_lines(content: CardContent) -> list[Line]:
    lines = [Line(content.merchant_name, 18, 28, colour=SOFT_TEXT)]
    if content.merchant_name_alternate:
        lines.append(Line(content.merchant_name_alternate, 16, 30, alternate=True, colour=SOFT_TEXT))
    if content.amount:
        lines.append(Line(content.amount, 32, 44, bold=True))
    return lines


def line_baselines(lines: list[Line]) -> list[float]:
    """Each line's baseline: the block of lines centred in the band between header and rule."""
    top = _TEXT_TOP + (_TEXT_BOTTOM - _TEXT_TOP - sum(line.height for line in lines)) / 2
    baselines = []
    for line in lines:
        baselines.append(top + line.height * 0.74)
        top += line.height
    return baselines


def _header_path() -> str:
    """The red band: rounded top corners, and a tail down the right edge below it."""
    r, w = RADIUS, CARD_WIDTH
    return (
        f"M0 {r}A{r} {r} 0 0 1 {r} 0H{w - r}A{r} {r} 0 0 1 {w} {r}"
        f"V{HEADER + TAIL}L{w - TAIL} {HEADER}H0Z"
    )


def _fmt(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _em_width(ch: str) -> float:
    """A generous advance of ``ch`` in ems, for sans-serif fonts the viewer may pick."""
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0.0
    if ch in "WMwm@%" or unicodedata.east_asian_width(ch) in ("W", "F"):
        return 1.0
    if ch in " .,:;'|!iIjlft()[]":
        return 0.4
    if ch.isupper() or is_khmer(ch):
        return 0.78
    return 0.66


def _svg_font_size(text: str, size: float, *, bold: bool) -> float:
    """``size``, or smaller so that ``text`` fits the card's width whatever font the viewer uses.

    An SVG cannot measure text; ``textLength`` would, but not every renderer honours it.
    """
    width = sum(_em_width(ch) for ch in text) * (1.08 if bold else 1.0)
    return size if width * size <= QR_BOX else max(6.0, QR_BOX / width)


def check_size(size: object, low: int, high: int) -> int:
    if not isinstance(size, int) or isinstance(size, bool) or not low <= size <= high:
        raise InvalidInput(f"size must be a whole number of pixels from {low} to {high}, got {size!r}", field="size")
    return size


def render_card_svg(khqr: str, *, expires_at: datetime | None = None, size: int | None = None) -> str:
    """The card as a self-contained SVG document (no external fonts, images or links).

    Coordinates are the card's 400 x 580 units (the viewBox); ``size`` sets the pixel width the
    SVG asks for (height in proportion); without it the SVG takes the width of its container.
    """
    if size is not None:
        check_size(size, 1, 100_000)
    content = card_content(khqr, expires_at=expires_at)
    n = len(content.matrix)
    scale = QR_BOX / (n + 2 * QUIET_ZONE)
    label = content.merchant_name + (f", {content.amount}" if content.amount else "")
    dims = f' width="{size}" height="{_fmt(size * CARD_HEIGHT / CARD_WIDTH)}"' if size is not None else ""
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" viewBox="0 0 {CARD_WIDTH} {CARD_HEIGHT}"{dims} '
        f'role="img" aria-label={quoteattr("KHQR: " + label)}>',
        f"<title>{escape('KHQR: ' + label)}</title>",
        f'<rect width="{CARD_WIDTH}" height="{CARD_HEIGHT}" rx="{RADIUS}" fill="#FFFFFF"/>',
        f'<path fill="{KHQR_RED}" d="{_header_path()}"/>',
        f'<text x="{CARD_WIDTH // 2}" y="{_fmt(HEADER / 2 + TITLE_SIZE * 0.36)}" font-family="{_LATIN_FAMILY}" '
        f'font-size="{TITLE_SIZE}" font-weight="bold" text-anchor="middle" fill="#FFFFFF">KHQR</text>',
    ]
    lines = text_lines(content)
    for line, baseline in zip(lines, line_baselines(lines), strict=True):
        family = _KHMER_FAMILY if line.alternate else _LATIN_FAMILY
        font_size = _svg_font_size(line.text, line.size, bold=line.bold)
        weight = ' font-weight="bold"' if line.bold else ""
        out.append(
            f'<text x="{MARGIN}" y="{_fmt(baseline)}" font-family="{family}" font-size="{_fmt(font_size)}"{weight} '
            f'fill="{line.colour}">{escape(line.text)}</text>'
        )
    out.append(
        f'<line x1="{MARGIN}" y1="{RULE_Y}" x2="{CARD_WIDTH - MARGIN}" y2="{RULE_Y}" stroke="{RULE}" '
        'stroke-width="1.5" stroke-dasharray="6 4"/>'
    )
    out.append(
        f'<g transform="translate({MARGIN} {QR_TOP}) scale({_fmt(scale)})" shape-rendering="crispEdges">'
        f'<path fill="#000000" d="{dark_module_path(content.matrix)}"/></g>'
    )
    centre_x, centre_y = CARD_WIDTH / 2, QR_TOP + QR_BOX / 2
    outer, inner = MARK_OUTER * n * scale / 2, MARK_INNER * n * scale / 2
    mark = CURRENCY_MARKS[content.currency]
    family = _KHMER_FAMILY if content.currency == "KHR" else _LATIN_FAMILY
    out.append(
        f'<g><circle cx="{_fmt(centre_x)}" cy="{_fmt(centre_y)}" r="{_fmt(outer)}" fill="#FFFFFF"/>'
        f'<circle cx="{_fmt(centre_x)}" cy="{_fmt(centre_y)}" r="{_fmt(inner)}" fill="#000000"/>'
        f'<text x="{_fmt(centre_x)}" y="{_fmt(centre_y + inner * 0.42)}" font-family="{family}" '
        f'font-size="{_fmt(inner * MARK_GLYPH[content.currency])}" font-weight="bold" text-anchor="middle" fill="#FFFFFF">{escape(mark)}</text></g>'
    )
    if content.expiry:
        out.append(
            f'<text x="{CARD_WIDTH // 2}" y="{EXPIRY_BASELINE}" font-family="{_LATIN_FAMILY}" font-size="14" '
            f'text-anchor="middle" fill="{SOFT_TEXT}">{escape(content.expiry)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"
