"""Drawing a KHQR for a phone to scan: in a terminal (Unicode half blocks), as PNG and as SVG.

The QR matrix comes from the ``qrcode`` library at error-correction level M (15%: enough for a
phone camera reading a screen or a slightly creased print, while keeping the code small enough for
an 80-column terminal), encoding the string's UTF-8 bytes. Every rendering has a 4-module quiet
zone, as the QR specification requires for reliable scanning.

Terminal colours: a text renderer cannot choose colours, only which cells are filled with the
terminal's foreground colour. ``render_terminal`` fills the *light* cells (quiet zone and light
modules) and leaves the dark modules blank, so on a terminal that draws light text on a dark
background (the default of nearly every terminal) the code shows dark-on-light, the polarity
every scanner reads. On a light-background terminal pass ``invert=True`` (``--invert`` in the
CLI). A face that controls colours (the TUI) should draw the default output with a light
foreground on a dark background, which makes it correct under any theme.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from xml.sax.saxutils import escape

from engine.errors import InvalidInput
from engine.khqr.crc import utf8
from engine.khqr.decode import decode

__all__ = ["QUIET_ZONE", "caption_for", "dark_module_path", "qr_matrix", "render_png", "render_svg", "render_terminal"]

#: Light modules around the code, on every side.
QUIET_ZONE = 4

_CURRENCY_NAMES = {"116": "KHR", "840": "USD"}
# (top light?, bottom light?) -> character, with filled = light.
_HALF_BLOCKS = {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}


def _printable(caption: str | None) -> list[str]:
    """The caption's lines without control characters (a caption may come from a scanned string)."""
    if not caption:
        return []
    return [
        "".join(ch for ch in line if ch.isprintable() and not "\ud800" <= ch <= "\udfff")
        for line in caption.splitlines()
    ]


def qr_matrix(qr: str) -> list[list[bool]]:
    """The QR code's modules for ``qr`` (True = dark), without the quiet zone."""
    import qrcode
    from qrcode.constants import ERROR_CORRECT_M

    if not isinstance(qr, str) or not qr:
        raise InvalidInput("nothing to draw: the KHQR string is empty", field="qr")
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=0)
    code.add_data(utf8(qr))
    code.make(fit=True)
    return [[bool(module) for module in row] for row in code.modules]


def dark_module_path(matrix: Sequence[Sequence[bool]]) -> str:
    """SVG path data for the dark modules, one rectangle per horizontal run, in module units.

    Coordinates include the quiet zone: the symbol's top-left module is at (4, 4).
    """
    parts = []
    for y, row in enumerate(matrix, start=QUIET_ZONE):
        x, size = 0, len(row)
        while x < size:
            if not row[x]:
                x += 1
                continue
            start = x
            while x < size and row[x]:
                x += 1
            parts.append(f"M{start + QUIET_ZONE} {y}h{x - start}v1h-{x - start}z")
    return "".join(parts)


def _with_quiet_zone(qr: str) -> list[list[bool]]:
    """The matrix with its quiet zone, as rows of "is light" flags."""
    modules = qr_matrix(qr)
    size = len(modules) + 2 * QUIET_ZONE
    blank = [True] * size
    pad = [True] * QUIET_ZONE
    rows = [blank] * QUIET_ZONE
    rows.extend(pad + [not dark for dark in row] + pad for row in modules)
    rows.extend([blank] * QUIET_ZONE)
    return rows


def caption_for(qr: str) -> str:
    """The amount and merchant name of a KHQR, as shown under the code ("12.50 USD · Cafe")."""
    from engine.money import format_amount, to_minor

    fields = decode(qr)
    name = fields["merchant_name"] or ""
    amount = fields["transaction_amount"]
    if not amount:
        return name
    currency = _CURRENCY_NAMES.get(fields["transaction_currency"] or "", fields["transaction_currency"] or "")
    try:
        shown = format_amount(to_minor(Decimal(amount), currency), currency)
    except (InvalidInput, InvalidOperation, ValueError):
        shown = f"{amount} {currency}".strip()
    return f"{shown} · {name}" if name else shown


def render_terminal(qr: str, *, caption: str | None = None, invert: bool = False) -> str:
    """The code as lines of half blocks (two modules per character cell), caption centred below.

    Filled cells are the light modules (see the module docstring); ``invert=True`` fills the dark
    modules instead, for terminals with a light background. Each line is ``size + 8`` characters.
    """
    rows = _with_quiet_zone(qr)
    size = len(rows)
    if invert:
        rows = [[not light for light in row] for row in rows]
    # An odd number of rows leaves a half cell under the last row: it is quiet zone too.
    below = [not invert] * size
    lines = []
    for top in range(0, size, 2):
        upper = rows[top]
        lower = rows[top + 1] if top + 1 < size else below
        lines.append("".join(_HALF_BLOCKS[pair] for pair in zip(upper, lower, strict=True)))
    lines.extend(line.center(size).rstrip() for line in _printable(caption))
    return "\n".join(lines)


def render_png(qr: str, *, scale: int = 8, caption: str | None = None, font: str | None = None) -> bytes:
    """The code as a black-on-white PNG, ``scale`` pixels per module, caption below.

    The image is ``(size + 8) * scale`` pixels wide and as tall plus the caption band. The
    caption uses Pillow's built-in font, which has Latin glyphs only: for Khmer text pass
    ``font``, the path of a TrueType font that has them.
    """
    import io

    from PIL import Image, ImageDraw, ImageFont

    if not isinstance(scale, int) or isinstance(scale, bool) or not 1 <= scale <= 100:
        raise InvalidInput(f"scale must be a whole number of pixels from 1 to 100, got {scale!r}", field="scale")
    rows = _with_quiet_zone(qr)
    size = len(rows)
    pixels = bytes(255 if light else 0 for row in rows for light in row)
    code = Image.frombytes("L", (size, size), pixels).resize((size * scale, size * scale), Image.Resampling.NEAREST)
    width = size * scale
    lines = _printable(caption)
    if not lines:
        image = code
    else:
        font_size = max(10, 2 * scale + 4)
        margin = scale
        while True:
            face = ImageFont.truetype(font, font_size) if font else ImageFont.load_default(size=font_size)
            measure = ImageDraw.Draw(code)
            boxes = [measure.textbbox((0, 0), line, font=face) for line in lines]
            widest = max(box[2] - box[0] for box in boxes)
            if widest <= width - 2 * margin or font_size <= 8:
                break
            font_size -= 1
        line_height = max(box[3] for box in boxes) + font_size // 3
        band = line_height * len(lines) + margin
        image = Image.new("L", (width, size * scale + band), 255)
        image.paste(code, (0, 0))
        draw = ImageDraw.Draw(image)
        for index, (line, box) in enumerate(zip(lines, boxes, strict=True)):
            x = (width - (box[2] - box[0])) // 2 - box[0]
            draw.text((x, size * scale + index * line_height), line, fill=0, font=face)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def render_svg(qr: str, *, caption: str | None = None, scale: int = 8) -> str:
    """The code as a standalone SVG (one path for the dark modules), caption below as text.

    Coordinates are in modules; ``scale`` sets the pixel width and height the SVG asks for.
    """
    matrix = qr_matrix(qr)
    size = len(matrix) + 2 * QUIET_ZONE
    path = dark_module_path(matrix)
    lines = _printable(caption)
    height = size + (3 * len(lines) + 1 if lines else 0)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{size * scale}" '
        f'height="{height * scale}" viewBox="0 0 {size} {height}" shape-rendering="crispEdges">',
        f'<rect width="{size}" height="{height}" fill="#ffffff"/>',
        f'<path fill="#000000" d="{path}"/>',
    ]
    for index, line in enumerate(lines):
        parts.append(
            f'<text x="{size / 2:g}" y="{size + 3 * index + 2}" font-family="sans-serif" font-size="2.2" '
            f'text-anchor="middle" fill="#000000">{escape(line)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
