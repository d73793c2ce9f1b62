"""KHQR cards: the code decodes back to the exact string, the text is the KHQR's own, bytes are stable.

PNGs are decoded with ZXing (``zxing-cpp``, a test dependency); SVGs are read as XML and their
module path is compared with the matrix from ``qrcode``. ``bakong-console khqr card`` is tested at
the end: files written whole or not at all, one-line errors.
"""

from __future__ import annotations

import io
import re
import struct
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image, ImageFilter
from typer.testing import CliRunner

from bakong_console.cli.main import app
from engine import khqr
from engine.errors import InvalidInput
from engine.khqr import IndividualInfo, KHQRError, MerchantInfo
from engine.khqr import card_png as card_png_module
from engine.khqr.card import CARD_HEIGHT, CARD_WIDTH, card_content, render_card_svg
from engine.khqr.card_png import khmer_font_path, render_card_png
from engine.khqr.render import QUIET_ZONE
from tests.khqr.test_cli import one_line_error

NOW = 1_735_689_600_000  # 2025-01-01T00:00:00Z, 07:00 in Phnom Penh
EXPIRES = NOW + 15 * 60_000
KHMER_NAME = "ហាងកាហ្វេក្លាំង"


def generate(**fields: object) -> str:
    fields.setdefault("bakong_account_id", "coffee@devb")
    fields.setdefault("merchant_name", "Coffee Klaing")
    if fields.get("amount"):
        fields.setdefault("expiration_timestamp", EXPIRES)
    return khqr.generate(IndividualInfo(**fields), now_ms=NOW).qr  # type: ignore[arg-type]


USD_KHMER = generate(currency="USD", amount="12.5", bill_number="INV-1", language_preference="km",
                     merchant_name_alternate_language=KHMER_NAME)
KHR = generate(amount=20000)
STATIC = generate()
# The longest fields KHQR allows: a larger QR version than the others.
LONG = khqr.generate(
    MerchantInfo(bakong_account_id="a-long-account-name@devbank", merchant_name="W" * 25, merchant_city="Siem Reap",
                 currency="USD", amount="9999999999.99", merchant_id="M" * 32, acquiring_bank="Dev Bank",
                 bill_number="B" * 25, store_label="S" * 25, terminal_label="T" * 25, language_preference="km",
                 merchant_name_alternate_language=KHMER_NAME + "ក" * 10, merchant_city_alternate_language="សៀមរាប",
                 expiration_timestamp=EXPIRES),
    now_ms=NOW,
).qr
SVG_NS = "{http://www.w3.org/2000/svg}"


def decoded(png: bytes | Image.Image) -> list[bytes]:
    image = png if isinstance(png, Image.Image) else Image.open(io.BytesIO(png))
    return [code.bytes for code in zxingcpp.read_barcodes(image.convert("L"), formats=zxingcpp.BarcodeFormat.QRCode)]


def svg_root(svg: str) -> ET.Element:
    return ET.fromstring(svg.encode("utf-8"))


def svg_texts(svg: str) -> list[str]:
    return ["".join(node.itertext()) for node in svg_root(svg).iter(f"{SVG_NS}text")]


def png_chunks(png: bytes) -> list[bytes]:
    chunks, at = [], 8
    while at < len(png):
        length, kind = struct.unpack(">I4s", png[at : at + 8])
        chunks.append(kind)
        at += 12 + length
    return chunks


# --- what the card says --------------------------------------------------------------------------


def test_content_is_read_from_the_khqr() -> None:
    content = card_content(USD_KHMER)
    assert (content.merchant_name, content.merchant_name_alternate) == ("Coffee Klaing", KHMER_NAME)
    assert (content.currency, content.amount) == ("USD", "12.50 USD")
    assert content.expiry == "Expires 2025-01-01 07:15 (Asia/Phnom_Penh)"
    assert [list(row) for row in content.matrix] == khqr.qr_matrix(USD_KHMER)


@pytest.mark.parametrize(
    ("qr", "amount"),
    [
        (KHR, "20,000 KHR"),
        (generate(currency="USD", amount="5"), "5.00 USD"),  # the KHQR carries "5"
        (generate(currency="USD", amount="1234.5"), "1,234.50 USD"),
        (generate(amount=100), "100 KHR"),
        (STATIC, None),
    ],
)
def test_amount_is_formatted_exactly(qr: str, amount: str | None) -> None:
    assert card_content(qr).amount == amount
    texts = svg_texts(render_card_svg(qr))
    if amount is None:
        assert not any(re.search(r"\d (USD|KHR)$", text) for text in texts)
    else:
        assert amount in texts


def test_svg_shows_header_merchant_khmer_name_amount_and_expiry() -> None:
    texts = svg_texts(render_card_svg(USD_KHMER))
    assert texts == ["KHQR", "Coffee Klaing", KHMER_NAME, "12.50 USD", "$", "Expires 2025-01-01 07:15 (Asia/Phnom_Penh)"]


def test_static_card_has_no_amount_and_no_expiry() -> None:
    texts = svg_texts(render_card_svg(STATIC))
    assert texts == ["KHQR", "Coffee Klaing", "\u17db"]


def test_expires_at_overrides_the_khqr_and_is_shown_in_phnom_penh_time() -> None:
    at = datetime(2025, 1, 1, 17, 30, tzinfo=UTC)
    assert card_content(KHR, expires_at=at).expiry == "Expires 2025-01-02 00:30 (Asia/Phnom_Penh)"
    assert "Expires 2025-01-02 00:30 (Asia/Phnom_Penh)" in svg_texts(render_card_svg(STATIC, expires_at=at))
    with pytest.raises(InvalidInput, match="timezone-aware"):
        render_card_svg(KHR, expires_at=datetime(2025, 1, 1, 17, 30))


def test_an_expired_khqr_is_still_drawn() -> None:
    """Drawing never reads the clock: whether to show an expired payment is the caller's call."""
    expired = khqr.generate(IndividualInfo(bakong_account_id="a@b", merchant_name="Shop", amount=1000,
                                           expiration_timestamp=1_000_000_000_001), now_ms=1_000_000_000_000).qr
    assert card_content(expired).expiry == "Expires 2001-09-09 08:46 (Asia/Phnom_Penh)"


def test_an_expiration_written_as_a_decimal_is_read_as_the_sdk_reads_it() -> None:
    """The SDK accepts "1735689600000.0" in tag 99 (Number() of it has 13 digits); so does the card."""
    body = KHR[: KHR.rindex("9934")]
    created = KHR[KHR.rindex("9934") + 8 : KHR.rindex("9934") + 21]
    timestamps = f"0013{created}01151735690500000.0"
    body += f"99{len(timestamps)}{timestamps}6304"
    qr = body + khqr.crc16(body)
    assert khqr.verify(qr, now_ms=NOW)
    assert card_content(qr).expiry == "Expires 2025-01-01 07:15 (Asia/Phnom_Penh)"


def test_svg_text_is_escaped_and_nothing_is_external() -> None:
    qr = generate(merchant_name='Tea <&> "Shop"\'s', currency="USD", amount="1")
    svg = render_card_svg(qr)
    root = svg_root(svg)
    assert 'Tea <&> "Shop"\'s' in svg_texts(svg)
    assert root.attrib["aria-label"] == 'KHQR: Tea <&> "Shop"\'s, 1.00 USD'
    assert "&lt;&amp;&gt;" in svg
    for forbidden in ("href", "url(", "@import", "<image", "<style", "<script", "http:", "https:"):
        assert forbidden not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_control_characters_never_reach_the_svg() -> None:
    qr = generate(merchant_name="Shop\x01\x1b[31m")
    assert "Shop[31m" in svg_texts(render_card_svg(qr))


# --- the code in the SVG -------------------------------------------------------------------------


@pytest.mark.parametrize("qr", [USD_KHMER, KHR, STATIC, LONG])
def test_svg_modules_are_the_qrcode_matrix_with_a_quiet_zone(qr: str) -> None:
    matrix = khqr.qr_matrix(qr)
    n = len(matrix)
    root = svg_root(render_card_svg(qr))
    assert root.attrib["viewBox"] == f"0 0 {CARD_WIDTH} {CARD_HEIGHT}"
    group = next(g for g in root.iter(f"{SVG_NS}g") if "scale" in g.attrib.get("transform", ""))
    left, top, scale = map(float, re.fullmatch(r"translate\((\S+) (\S+)\) scale\((\S+)\)", group.attrib["transform"]).groups())
    path = group.find(f"{SVG_NS}path")
    assert path is not None
    cells = set()
    for x, y, width in re.findall(r"M(\d+) (\d+)h(\d+)v1h-\d+z", path.attrib["d"]):
        cells.update((int(x) + i, int(y)) for i in range(int(width)))
    assert cells == {(x + QUIET_ZONE, y + QUIET_ZONE) for y, row in enumerate(matrix) for x, dark in enumerate(row) if dark}
    # The quiet zone (4 modules on every side) lies inside the card, and no text is drawn on the code.
    box = (n + 2 * QUIET_ZONE) * scale
    assert left >= 0 and left + box <= CARD_WIDTH and top + box <= CARD_HEIGHT
    for text in root.iter(f"{SVG_NS}text"):
        if text.text in ("$", "\u17db"):
            continue  # the currency mark, centred on the code
        assert not top <= float(text.attrib["y"]) <= top + box + 4, text.text


def test_svg_mark_sits_in_the_centre_of_the_code() -> None:
    root = svg_root(render_card_svg(KHR))
    group = next(g for g in root.iter(f"{SVG_NS}g") if "scale" in g.attrib.get("transform", ""))
    left, top, scale = map(float, re.findall(r"[\d.]+", group.attrib["transform"]))
    n = len(khqr.qr_matrix(KHR))
    circles = list(root.iter(f"{SVG_NS}circle"))
    assert [c.attrib["fill"] for c in circles] == ["#FFFFFF", "#000000"]
    for circle in circles:
        assert float(circle.attrib["cx"]) == pytest.approx(left + (n + 8) * scale / 2, abs=0.01)
        assert float(circle.attrib["cy"]) == pytest.approx(top + (n + 8) * scale / 2, abs=0.01)
    # The white disc covers at most 14% of the symbol's width: a few codewords of level M's 15%.
    assert float(circles[0].attrib["r"]) * 2 <= 0.14 * n * scale + 0.01


def test_svg_size_sets_the_pixel_width_only() -> None:
    root = svg_root(render_card_svg(KHR, size=500))
    assert (root.attrib["width"], root.attrib["height"]) == ("500", "725")
    assert "width" not in svg_root(render_card_svg(KHR)).attrib
    assert render_card_svg(KHR, size=500).split("\n", 3)[3] == render_card_svg(KHR).split("\n", 3)[3]


# --- the PNG -------------------------------------------------------------------------------------


@pytest.mark.parametrize("qr", [USD_KHMER, KHR, STATIC, LONG])
@pytest.mark.parametrize("size", [None, 300, 1200])
def test_png_decodes_back_to_the_exact_khqr(qr: str, size: int | None) -> None:
    png = render_card_png(qr, size=size)
    assert decoded(png) == [qr.encode("utf-8")]


def test_png_still_decodes_blurred_and_shrunk() -> None:
    """The currency mark leaves level M enough to read a card that is not pixel-perfect."""
    for qr in (USD_KHMER, KHR, LONG):
        image = Image.open(io.BytesIO(render_card_png(qr))).convert("L")
        module = 600 * 336 // 400 // (len(khqr.qr_matrix(qr)) + 8)
        assert decoded(image.filter(ImageFilter.GaussianBlur(0.35 * module))) == [qr.encode()]
        assert decoded(image.resize((image.width * 2 // 3, image.height * 2 // 3), Image.Resampling.BILINEAR)) == [qr.encode()]


def _qr_box(image: Image.Image, n: int) -> tuple[int, int, int]:
    """(left, top, module pixels) of the symbol: the dark pixels' bounding box inside the code area."""
    grey = image.convert("L")
    k = image.width / CARD_WIDTH
    area = grey.crop((0, round(200 * k), image.width, round(536 * k)))
    left, top, right, _ = area.point(lambda v: 255 if v < 128 else 0).getbbox()
    module = (right - left) // n
    assert right - left == module * n
    return left, top + round(200 * k), module


@pytest.mark.parametrize("size", [None, 455])
def test_png_modules_quiet_zone_and_mark(size: int | None) -> None:
    matrix = khqr.qr_matrix(USD_KHMER)
    n = len(matrix)
    image = Image.open(io.BytesIO(render_card_png(USD_KHMER, size=size)))
    grey = image.convert("L")
    left, top, m = _qr_box(image, n)
    assert m >= 2
    # 4 modules of pure white on every side of the symbol.
    ring = grey.crop((left - 4 * m, top - 4 * m, left + (n + 4) * m, top + (n + 4) * m))
    inner = (4 * m, 4 * m, (n + 4) * m, (n + 4) * m)
    assert left - 4 * m >= 0 and left + (n + 4) * m <= image.width
    for x in range(ring.width):
        for y in range(ring.height):
            if not (inner[0] <= x < inner[2] and inner[1] <= y < inner[3]):
                assert ring.getpixel((x, y)) == 255, (x, y)
    # Every module outside the mark is exactly black or white, as the matrix says.
    centre = n / 2
    covered = 0
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if (x + 0.5 - centre) ** 2 + (y + 0.5 - centre) ** 2 <= (0.07 * n + 1) ** 2:
                covered += 1
                continue
            assert grey.getpixel((left + x * m + m // 2, top + y * m + m // 2)) == (0 if dark else 255), (x, y)
    assert covered <= 0.03 * n * n
    # The mark: a white ring around a dark disc at the centre of the symbol.
    cx, cy, r_outer, r_inner = left + centre * m, top + centre * m, 0.07 * n * m, 0.055 * n * m
    assert grey.getpixel((round(cx + (r_outer + r_inner) / 2), round(cy))) > 200
    assert grey.getpixel((round(cx - 0.85 * r_inner), round(cy))) < 60


def test_png_size_and_transparent_corners() -> None:
    for size, height in ((None, 870), (300, 435), (1000, 1450)):
        image = Image.open(io.BytesIO(render_card_png(KHR, size=size)))
        assert image.mode == "RGBA"
        assert image.size == (size or 600, height)
        assert image.getpixel((0, 0))[3] == 0 and image.getpixel((image.width - 1, image.height - 1))[3] == 0
        assert image.getpixel((image.width // 2, 2)) == (0xE1, 0x23, 0x2E, 255)  # the red band
        assert image.getpixel((image.width // 2, image.height - 2)) == (255, 255, 255, 255)


def test_png_bytes_are_deterministic_and_carry_no_metadata() -> None:
    first = render_card_png(USD_KHMER)
    khmer_font_path.cache_clear()
    card_png_module._font.cache_clear()
    assert render_card_png(USD_KHMER) == first
    assert render_card_svg(USD_KHMER) == render_card_svg(USD_KHMER)
    assert set(png_chunks(first)) == {b"IHDR", b"IDAT", b"IEND"}


def _ink_rows(image: Image.Image) -> int:
    """How many lines of text the band between the red header and the dashed rule holds.

    Inked pixel rows closer than 3 card units belong to one line (Khmer vowel signs float above).
    """
    k = image.width / CARD_WIDTH
    band = image.convert("L").crop((round(20 * k), round(66 * k), round(370 * k), round(186 * k)))
    inked = [y for y in range(band.height) if any(band.getpixel((x, y)) < 160 for x in range(band.width))]
    return sum(1 for before, y in zip([-999, *inked], inked, strict=False) if y - before > 3 * k)


def test_png_without_a_khmer_font_is_latin_only() -> None:
    latin = Image.open(io.BytesIO(render_card_png(USD_KHMER, khmer_font=None)))
    assert _ink_rows(latin) == 2  # merchant name and amount; the Khmer name is left out
    assert decoded(latin) == [USD_KHMER.encode()]
    # A KHR card then has no centre mark: every module is as the matrix says.
    matrix = khqr.qr_matrix(KHR)
    image = Image.open(io.BytesIO(render_card_png(KHR, khmer_font=None))).convert("L")
    left, top, m = _qr_box(image, len(matrix))
    assert all(
        image.getpixel((left + x * m + m // 2, top + y * m + m // 2)) == (0 if dark else 255)
        for y, row in enumerate(matrix) for x, dark in enumerate(row)
    )


def test_png_draws_the_khmer_name_with_a_khmer_font() -> None:
    font = khmer_font_path()
    if font is None:
        pytest.skip("no Khmer font on this system (Debian: fonts-khmeros or fonts-noto-core)")
    image = Image.open(io.BytesIO(render_card_png(USD_KHMER, khmer_font=font)))
    assert _ink_rows(image) == 3
    assert render_card_png(USD_KHMER, khmer_font=font) == render_card_png(USD_KHMER)  # found by default


def test_png_with_a_missing_font_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot use the font"):
        render_card_png(USD_KHMER, khmer_font=tmp_path / "missing.ttf")


# --- refusals ------------------------------------------------------------------------------------


def test_invalid_khqr_is_refused_with_its_sdk_code() -> None:
    broken = KHR[:-4] + ("0000" if not KHR.endswith("0000") else "1111")
    for render in (render_card_png, render_card_svg):
        with pytest.raises(KHQRError) as error:
            render(broken)
        assert error.value.code == 8
        with pytest.raises(InvalidInput, match="empty"):
            render("")


def test_sizes_out_of_range_are_refused() -> None:
    for size in (0, -1, 4001, 2.5, True, "600"):
        with pytest.raises(InvalidInput, match="size"):
            render_card_png(KHR, size=size)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="size"):
        render_card_svg(KHR, size=0)
    # Too narrow for 2 pixels per module: the message says how wide this KHQR needs.
    n = len(khqr.qr_matrix(LONG))
    need = -(-2 * (n + 8) * CARD_WIDTH // 336)
    with pytest.raises(InvalidInput, match=f"at least {need} pixels"):
        render_card_png(LONG, size=need - 1)
    assert decoded(render_card_png(LONG, size=need)) == [LONG.encode()]


# --- bakong-console khqr card --------------------------------------------------------------------

runner = CliRunner()


def card_cli(*args: str, stdin: str | None = None):  # noqa: ANN201
    return runner.invoke(app, ["khqr", "card", *args], input=stdin)


def test_cli_writes_a_png_card(tmp_path: Path) -> None:
    out = tmp_path / "card.png"
    result = card_cli(USD_KHMER, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"PNG:  {out}\n"
    assert out.read_bytes() == render_card_png(USD_KHMER)
    assert decoded(out.read_bytes()) == [USD_KHMER.encode()]
    assert card_cli(KHR, "-o", str(out), "--size", "300").exit_code == 0
    assert Image.open(out).size == (300, 435)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.png"]


def test_cli_writes_an_svg_card_from_stdin(tmp_path: Path) -> None:
    out = tmp_path / "Card.SVG"
    result = card_cli("-", "--output", str(out), "--size", "450", stdin=KHR + "\n")
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == render_card_svg(KHR, size=450)


def test_cli_bad_extension_writes_nothing(tmp_path: Path) -> None:
    assert ".png or .svg" in one_line_error(card_cli(KHR, "-o", str(tmp_path / "card.jpg")))
    assert ".png or .svg" in one_line_error(card_cli(KHR, "-o", str(tmp_path / "card")))
    assert list(tmp_path.iterdir()) == []


def test_cli_invalid_khqr_leaves_an_existing_file_alone(tmp_path: Path) -> None:
    out = tmp_path / "card.png"
    out.write_bytes(b"the previous card")
    assert "CRC" in one_line_error(card_cli(KHR[:-1] + "X", "-o", str(out)))
    assert out.read_bytes() == b"the previous card"
    assert list(tmp_path.iterdir()) == [out]


def test_cli_unwritable_path_is_one_line_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    assert "cannot write" in one_line_error(card_cli(KHR, "-o", str(not_a_dir / "card.png")))
    assert "cannot write" in one_line_error(card_cli(KHR, "-o", str(tmp_path / "missing" / "card.svg")))
    (tmp_path / "taken.png").mkdir()
    assert "cannot write" in one_line_error(card_cli(KHR, "-o", str(tmp_path / "taken.png")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "taken.png"]
    assert list((tmp_path / "taken.png").iterdir()) == []


def test_cli_size_too_small_is_one_line(tmp_path: Path) -> None:
    assert "too small" in one_line_error(card_cli(KHR, "-o", str(tmp_path / "card.png"), "--size", "100"))
    assert list(tmp_path.iterdir()) == []
