"""Rendering: the terminal half blocks, PNG and SVG carry exactly the QR matrix, with a quiet zone."""

from __future__ import annotations

import io
import math
import re
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from engine import khqr
from engine.errors import InvalidInput
from engine.khqr import IndividualInfo
from engine.khqr.render import QUIET_ZONE

NOW = 1_735_689_600_000
DYNAMIC = khqr.generate(
    IndividualInfo(bakong_account_id="jonhsmith@nbcq", merchant_name="Jonh Smith", amount=50000, bill_number="#0001",
                   expiration_timestamp=NOW + 3_600_000),
    now_ms=NOW,
).qr
STATIC_USD = khqr.generate(IndividualInfo(bakong_account_id="jonhsmith@nbcq", merchant_name="Jonh Smith", currency="USD"), now_ms=NOW).qr

# Half block -> (top filled, bottom filled)
CELLS = {"█": (True, True), "▀": (True, False), "▄": (False, True), " ": (False, False)}


def filled_grid(text: str, rows: int) -> list[list[bool]]:
    grid: list[list[bool]] = []
    for line in text.splitlines()[: math.ceil(rows / 2)]:
        grid.append([CELLS[ch][0] for ch in line])
        grid.append([CELLS[ch][1] for ch in line])
    return grid[:rows]


def test_matrix_is_a_qr_symbol() -> None:
    matrix = khqr.qr_matrix(DYNAMIC)
    size = len(matrix)
    assert size >= 21 and (size - 17) % 4 == 0
    assert all(len(row) == size for row in matrix)
    # The three finder patterns: a dark 7x7 ring in three corners.
    for top, left in ((0, 0), (0, size - 7), (size - 7, 0)):
        assert all(matrix[top][left + i] and matrix[top + 6][left + i] for i in range(7))


def test_terminal_shape_quiet_zone_and_modules() -> None:
    matrix = khqr.qr_matrix(DYNAMIC)
    size = len(matrix) + 2 * QUIET_ZONE
    text = khqr.render_terminal(DYNAMIC)
    lines = text.splitlines()
    assert len(lines) == math.ceil(size / 2)
    assert all(len(line) == size for line in lines)
    assert set(text) <= set("█▀▄ \n")
    assert lines[0] == lines[1] == "█" * size  # 4 quiet rows: light, i.e. filled
    assert all(line.startswith("█" * QUIET_ZONE) and line.endswith("█" * QUIET_ZONE) for line in lines)
    grid = filled_grid(text, size)
    # Filled = light: inside the quiet zone, a cell is filled exactly where the module is light.
    inner = [row[QUIET_ZONE:-QUIET_ZONE] for row in grid[QUIET_ZONE:-QUIET_ZONE]]
    assert inner == [[not dark for dark in row] for row in matrix]
    assert all(all(row) for row in grid[-QUIET_ZONE:])


def test_terminal_invert_draws_dark_modules() -> None:
    normal = khqr.render_terminal(DYNAMIC)
    inverted = khqr.render_terminal(DYNAMIC, invert=True)
    swap = {"█": " ", " ": "█", "▀": "▄", "▄": "▀"}
    assert inverted == "".join(swap.get(ch, ch) for ch in normal)


def test_terminal_caption_is_centred_below_and_sanitised() -> None:
    text = khqr.render_terminal(DYNAMIC, caption="50,000 KHR · Jonh Smith\x1b[31m")
    last = text.splitlines()[-1]
    size = len(text.splitlines()[0])
    assert last.strip() == "50,000 KHR · Jonh Smith[31m"
    assert "\x1b" not in text
    assert abs(len(last) - len(last.lstrip()) - (size - len(last.strip())) // 2) <= 1


def test_caption_for_shows_amount_and_name() -> None:
    assert khqr.caption_for(DYNAMIC) == "50,000 KHR · Jonh Smith"
    assert khqr.caption_for(STATIC_USD) == "Jonh Smith"
    usd = khqr.generate(IndividualInfo(bakong_account_id="a@b", merchant_name="Cafe", currency="USD", amount="5",
                                       expiration_timestamp=NOW + 1), now_ms=NOW).qr
    assert khqr.caption_for(usd) == "5.00 USD · Cafe"


@pytest.mark.parametrize("scale", [1, 4, 10])
def test_png_size_and_pixels(scale: int) -> None:
    matrix = khqr.qr_matrix(DYNAMIC)
    size = len(matrix) + 2 * QUIET_ZONE
    data = khqr.render_png(DYNAMIC, scale=scale)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data)).convert("L")
    assert image.size == (size * scale, size * scale)
    for y in range(size):
        for x in range(size):
            dark = QUIET_ZONE <= y < size - QUIET_ZONE and QUIET_ZONE <= x < size - QUIET_ZONE and matrix[y - QUIET_ZONE][x - QUIET_ZONE]
            pixel = image.getpixel((x * scale + scale // 2, y * scale + scale // 2))
            assert pixel == (0 if dark else 255), (x, y)


def test_png_caption_band() -> None:
    plain = Image.open(io.BytesIO(khqr.render_png(DYNAMIC, scale=6))).convert("L")
    captioned = Image.open(io.BytesIO(khqr.render_png(DYNAMIC, scale=6, caption=khqr.caption_for(DYNAMIC)))).convert("L")
    assert captioned.width == plain.width
    assert captioned.height > plain.height
    band = captioned.crop((0, plain.height, captioned.width, captioned.height))
    assert band.getextrema()[0] < 128  # some text was drawn
    assert captioned.crop((0, 0, plain.width, plain.height)).tobytes() == plain.tobytes()


def test_png_rejects_a_bad_scale() -> None:
    with pytest.raises(InvalidInput):
        khqr.render_png(DYNAMIC, scale=0)


def test_svg_is_xml_with_the_modules_and_the_caption() -> None:
    matrix = khqr.qr_matrix(DYNAMIC)
    size = len(matrix) + 2 * QUIET_ZONE
    svg = khqr.render_svg(DYNAMIC, caption="50,000 KHR · <Jonh & Smith>")
    root = ET.fromstring(svg.encode("utf-8"))
    ns = {"svg": "http://www.w3.org/2000/svg"}
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    view = [float(v) for v in root.attrib["viewBox"].split()]
    assert view[2] == size and view[3] > size
    path = root.find("svg:path", ns)
    assert path is not None
    cells = set()
    for x, y, width in re.findall(r"M(\d+) (\d+)h(\d+)", path.attrib["d"]):
        cells.update((int(x) + i, int(y)) for i in range(int(width)))
    expected = {(x + QUIET_ZONE, y + QUIET_ZONE) for y, row in enumerate(matrix) for x, dark in enumerate(row) if dark}
    assert cells == expected
    texts = [t.text for t in root.findall("svg:text", ns)]
    assert texts == ["50,000 KHR · <Jonh & Smith>"]


def test_svg_without_caption_is_square() -> None:
    root = ET.fromstring(khqr.render_svg(STATIC_USD).encode("utf-8"))
    _, _, width, height = root.attrib["viewBox"].split()
    assert width == height
    assert root.find("{http://www.w3.org/2000/svg}text") is None


def test_nothing_to_draw() -> None:
    with pytest.raises(InvalidInput):
        khqr.render_terminal("")
