"""The KHQR card as a PNG: ``card``'s layout drawn with Pillow, and the Khmer font it needs.

Latin text is drawn with Pillow's built-in scalable font (the same on every machine), Khmer text
with a Khmer font found on the system (``khmer_font_path``); see ``engine.khqr.card`` for the layout
and what a card shows. The bytes are a pure function of the input (no timestamp chunk).
"""

from __future__ import annotations

import io
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Final

from engine.errors import InvalidInput
from engine.khqr.card import (
    CARD_HEIGHT,
    CARD_WIDTH,
    CURRENCY_MARKS,
    DEFAULT_PNG_WIDTH,
    EXPIRY_BASELINE,
    HEADER,
    KHQR_RED,
    MARGIN,
    MARK_GLYPH,
    MARK_INNER,
    MARK_OUTER,
    MAX_PNG_WIDTH,
    QR_BOX,
    QR_TOP,
    RADIUS,
    RULE,
    RULE_Y,
    SOFT_TEXT,
    TAIL,
    TITLE_SIZE,
    Line,
    card_content,
    check_size,
    is_khmer,
    line_baselines,
    text_lines,
)
from engine.khqr.render import QUIET_ZONE

__all__ = ["khmer_font_path", "render_card_png"]

_KHMER_FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".local/share/fonts")
#: Preferred first: fonts made for running text on screens.
_KHMER_FONT_FILES = (
    "NotoSansKhmer-Regular.ttf",
    "NotoSansKhmerUI-Regular.ttf",
    "KhmerOSsys.ttf",
    "KhmerOS.ttf",
    "KhmerOSbattambang.ttf",
    "KhmerOSsiemreap.ttf",
)


class _Auto:
    """The default of ``render_card_png(khmer_font=...)``: look for a Khmer font on this system."""

    def __repr__(self) -> str:
        return "<find a Khmer font>"


_AUTO: Final = _Auto()


@lru_cache(maxsize=1)
def khmer_font_path() -> str | None:
    """The path of a Khmer-capable TrueType font on this system, or None (see the module docstring)."""
    found: dict[str, str] = {}
    for folder in _KHMER_FONT_DIRS:
        try:
            if not folder.is_dir():
                continue
            for name in _KHMER_FONT_FILES:
                for path in sorted(folder.rglob(name)):
                    found.setdefault(name, str(path))
        except OSError:
            continue
    return next((found[name] for name in _KHMER_FONT_FILES if name in found), None)


@lru_cache(maxsize=64)
def _font(path: str | None, size: int):  # noqa: ANN202 - a PIL FreeTypeFont
    from PIL import ImageFont

    if path is None:
        return ImageFont.load_default(size=size)
    try:
        return ImageFont.truetype(path, size)
    except OSError as exc:
        raise InvalidInput(f"cannot use the font {path}: {exc}", field="khmer_font") from None


@lru_cache(maxsize=4096)
def _builtin_draws(ch: str) -> bool:
    """Whether Pillow's built-in font has a glyph for ``ch`` (it draws a box for those it lacks)."""
    from PIL import Image, ImageDraw

    def picture(text: str) -> bytes:
        image = Image.new("L", (48, 48), 0)
        ImageDraw.Draw(image).text((8, 8), text, fill=255, font=_font(None, 24))
        return image.tobytes()

    return ch.isspace() or picture(ch) != picture("\ue000")


def _font_for(text: str, khmer_font: str | None) -> str | None | bool:
    """The font path to draw ``text`` with (None: the built-in font), or False when none can."""
    if all(_builtin_draws(ch) for ch in text):
        return None
    if khmer_font and all(is_khmer(ch) or _builtin_draws(ch) for ch in text):
        return khmer_font
    return False


def _supersampled(size: tuple[int, int], draw, factor: int = 4):  # noqa: ANN001, ANN202
    """An antialiased "L" mask: ``draw(ImageDraw, factor)`` draws it ``factor`` times larger."""
    from PIL import Image, ImageDraw

    big = Image.new("L", (size[0] * factor, size[1] * factor), 0)
    draw(ImageDraw.Draw(big), factor)
    return big.resize(size, Image.Resampling.BOX)


def render_card_png(
    khqr: str,
    *,
    expires_at: datetime | None = None,
    size: int | None = None,
    khmer_font: str | Path | None | _Auto = _AUTO,
) -> bytes:
    """The card as a PNG ``size`` pixels wide (default 600, at most 4000), transparent outside its corners.

    Each QR module is a whole number of pixels, at least 2: the smallest width depends on the
    KHQR's QR version (about 155 pixels for a typical dynamic KHQR).
    ``khmer_font``: the font for Khmer text; by default ``khmer_font_path()``; None for Latin only.
    """
    from PIL import Image, ImageDraw

    width = DEFAULT_PNG_WIDTH if size is None else check_size(size, 1, MAX_PNG_WIDTH)
    content = card_content(khqr, expires_at=expires_at)
    khmer = khmer_font_path() if isinstance(khmer_font, _Auto) else (str(khmer_font) if khmer_font is not None else None)
    k = width / CARD_WIDTH
    height = round(CARD_HEIGHT * k)
    n = len(content.matrix)
    modules = n + 2 * QUIET_ZONE
    module_px = int(QR_BOX * k) // modules
    if module_px < 2:
        need = -(-2 * modules * CARD_WIDTH // QR_BOX)
        raise InvalidInput(f"size {width} is too small for this KHQR: the card must be at least {need} pixels wide", field="size")

    card = Image.new("RGB", (width, height), "#FFFFFF")
    draw = ImageDraw.Draw(card)

    # The red band with its tail, antialiased along the diagonal.
    band = (width, round((HEADER + TAIL) * k))
    band_mask = _supersampled(band, lambda d, f: d.polygon(
        [(0, 0), (band[0] * f, 0), (band[0] * f, band[1] * f), ((CARD_WIDTH - TAIL) * k * f, HEADER * k * f), (0, HEADER * k * f)],
        fill=255))
    card.paste(KHQR_RED, (0, 0), band_mask)
    title = _font(None, round(TITLE_SIZE * k))
    draw.text((width / 2, (HEADER / 2 + TITLE_SIZE * 0.36) * k), "KHQR", font=title, fill="#FFFFFF", anchor="ms",
              stroke_width=max(1, round(k)), stroke_fill="#FFFFFF")

    drawn: list[tuple[Line, str | None]] = []
    for line in text_lines(content):
        path = _font_for(line.text, khmer)
        if path is False and line.alternate:
            continue  # no font here draws the alternate-language name: a Latin-only card
        drawn.append((line, path or None))  # the merchant name is drawn whatever it takes
    for (line, path), baseline in zip(drawn, line_baselines([line for line, _ in drawn]), strict=True):
        font_size = round(line.size * k)
        font = _font(path, font_size)
        while font.getlength(line.text) > QR_BOX * k and font_size > 6:
            font_size -= 1
            font = _font(path, font_size)
        stroke = max(1, round(font_size / 28)) if line.bold else 0
        draw.text((MARGIN * k, baseline * k), line.text, font=font, fill=line.colour, anchor="ls",
                  stroke_width=stroke, stroke_fill=line.colour)

    dash, gap, y = 6 * k, 4 * k, round(RULE_Y * k)
    x = MARGIN * k
    while x < (CARD_WIDTH - MARGIN) * k:
        draw.line([(round(x), y), (round(min(x + dash, (CARD_WIDTH - MARGIN) * k)), y)], fill=RULE, width=max(1, round(1.5 * k)))
        x += dash + gap

    # The QR: the quiet zone is the card's white; modules are whole pixels for a sharp code.
    qr_px = module_px * modules
    left = (width - qr_px) // 2
    top = round(QR_TOP * k + (QR_BOX * k - qr_px) / 2)
    pixels = bytes(0 if dark else 255 for row in content.matrix for dark in row)
    code = Image.frombytes("L", (n, n), pixels).resize((n * module_px, n * module_px), Image.Resampling.NEAREST)
    offset = QUIET_ZONE * module_px
    card.paste(code, (left + offset, top + offset))

    mark = CURRENCY_MARKS[content.currency]
    mark_font = _font_for(mark, khmer)
    if mark_font is not False:
        centre_x, centre_y = left + qr_px / 2, top + qr_px / 2
        outer, inner = MARK_OUTER * n * module_px / 2, MARK_INNER * n * module_px / 2
        box = (round(centre_x - outer), round(centre_y - outer), round(centre_x + outer), round(centre_y + outer))
        disc = (box[2] - box[0], box[3] - box[1])
        ring = inner / outer
        white = _supersampled(disc, lambda d, f: d.ellipse([0, 0, disc[0] * f - 1, disc[1] * f - 1], fill=255))
        black = _supersampled(disc, lambda d, f: d.ellipse(
            [disc[0] * f * (1 - ring) / 2, disc[1] * f * (1 - ring) / 2,
             disc[0] * f * (1 + ring) / 2 - 1, disc[1] * f * (1 + ring) / 2 - 1], fill=255))
        card.paste("#FFFFFF", box[:2], white)
        card.paste("#000000", box[:2], black)
        glyph = _font(mark_font, max(6, round(inner * MARK_GLYPH[content.currency])))
        draw.text(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), mark, font=glyph, fill="#FFFFFF", anchor="mm",
                  stroke_width=max(1, round(inner / 24)), stroke_fill="#FFFFFF")

    if content.expiry:
        font_size = round(14 * k)
        draw.text((width / 2, EXPIRY_BASELINE * k), content.expiry, font=_font(None, font_size), fill=SOFT_TEXT, anchor="ms")

    # Transparent outside the rounded corners, antialiased.
    radius = round(RADIUS * k)
    alpha = Image.new("L", (width, height), 255)
    corner = _supersampled((radius, radius), lambda d, f: d.pieslice([0, 0, 2 * radius * f - 1, 2 * radius * f - 1], 180, 270, fill=255))
    alpha.paste(corner, (0, 0))
    alpha.paste(corner.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (width - radius, 0))
    alpha.paste(corner.transpose(Image.Transpose.FLIP_TOP_BOTTOM), (0, height - radius))
    alpha.paste(corner.transpose(Image.Transpose.ROTATE_180), (width - radius, height - radius))
    card.putalpha(alpha)

    out = io.BytesIO()
    card.save(out, format="PNG")
    return out.getvalue()
