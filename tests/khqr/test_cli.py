"""`bakong-console khqr new|show|decode|verify`: output, files, defaults from settings, exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from bakong_console.cli.main import app
from engine import khqr
from engine.khqr.generate import current_ms

runner = CliRunner()
NOW = 1_735_689_600_000
VALID = "00020101021129180014jonhsmith@nbcq5204599953031165802KH5910Jonh Smith6010Phnom Penh6304856B"
DYNAMIC = "00020101021229180014jonhsmith@nbcq5204599953031165405500005802KH5910Jonh Smith6010Phnom Penh62090105#0001993400131735689600000011317356932000006304F3DA"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        '[merchant]\nbakong_account_id = "coffee@devb"\nname = "Coffee Klaing"\ncity = "Siem Reap"\n'
        'store_label = "Main"\n\n[payments]\ncurrency = "USD"\ndefault_timeout_minutes = 20\n',
        encoding="utf-8",
    )
    return path


def run(*args: str, config: Path | None = None, stdin: str | None = None):  # noqa: ANN201
    prefix = ["--config", str(config)] if config else []
    return runner.invoke(app, [*prefix, "khqr", *args], input=stdin)


def one_line_error(result) -> str:  # noqa: ANN001
    assert result.exit_code != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_new_prints_the_code_the_string_and_the_md5(config: Path) -> None:
    before = current_ms()
    result = run("new", "--amount", "12.5", "--bill-number", "INV-1", config=config)
    after = current_ms()
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    qr = next(line for line in lines if line.startswith("KHQR: "))[6:]
    md5 = next(line for line in lines if line.startswith("MD5:  "))[6:]
    assert khqr.md5(qr) == md5
    assert khqr.verify(qr)
    fields = khqr.decode(qr)
    # Defaults from [merchant] and [payments]:
    assert (fields["bakong_account_id"], fields["merchant_name"], fields["merchant_city"]) == ("coffee@devb", "Coffee Klaing", "Siem Reap")
    assert (fields["transaction_currency"], fields["transaction_amount"], fields["store_label"]) == ("840", "12.50", "Main")
    created, expires = int(fields["creation_timestamp"]), int(fields["expiration_timestamp"])  # type: ignore[arg-type]
    assert before <= created <= after and expires == created + 20 * 60_000
    # The code itself, then its caption.
    assert lines[0] == "█" * len(lines[0])
    assert "12.50 USD · Coffee Klaing" in result.stdout


def test_new_options_override_settings(config: Path) -> None:
    result = run("new", "--json", "--currency", "KHR", "--amount", "40000", "--account", "other@abaa", "--name", "Other",
                 "--city", "Kampot", "--mcc", "5814", "--expires-in", "5", "--purpose", "Coffee", "--merchant-type", "merchant",
                 "--merchant-id", "M-1", "--acquiring-bank", "Dev Bank", config=config)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"qr", "md5", "fields"}
    fields = data["fields"]
    assert fields == khqr.decode(data["qr"])
    assert fields["merchant_type"] == "30"
    assert (fields["merchant_id"], fields["acquiring_bank"], fields["merchant_category_code"]) == ("M-1", "Dev Bank", "5814")
    assert (fields["transaction_currency"], fields["transaction_amount"], fields["purpose_of_transaction"]) == ("116", "40000", "Coffee")
    assert int(fields["expiration_timestamp"]) - int(fields["creation_timestamp"]) == 5 * 60_000


def test_new_static_and_explicit_expiration(config: Path) -> None:
    static = json.loads(run("new", "--json", config=config).stdout)
    assert static["fields"]["point_of_initiation_method"] == "11"
    expires = current_ms() + 3_600_000
    dynamic = json.loads(run("new", "--json", "--amount", "1", "--expiration-timestamp", str(expires), config=config).stdout)
    assert dynamic["fields"]["expiration_timestamp"] == str(expires)


def test_new_writes_png_and_svg(config: Path, tmp_path: Path) -> None:
    png, svg = tmp_path / "qr.png", tmp_path / "qr.svg"
    result = run("new", "--amount", "3", "--png", str(png), "--svg", str(svg), "--scale", "5", config=config)
    assert result.exit_code == 0, result.output
    qr = next(line for line in result.stdout.splitlines() if line.startswith("KHQR: "))[6:]
    image = Image.open(io.BytesIO(png.read_bytes()))
    assert image.width == (len(khqr.qr_matrix(qr)) + 8) * 5
    assert "3.00 USD · Coffee Klaing" in svg.read_text(encoding="utf-8")
    assert f"PNG:  {png}" in result.stdout and f"SVG:  {svg}" in result.stdout


def test_new_bad_input_is_one_line(config: Path) -> None:
    assert "Amount is invalid" in one_line_error(run("new", "--amount", "1.234", config=config))
    assert "not both" in one_line_error(run("new", "--amount", "1", "--expires-in", "5", "--expiration-timestamp", "1", config=config))
    assert "Bakong Account ID is invalid" in one_line_error(run("new", "--account", "nobody", config=config))
    assert "Merchant ID cannot be null or empty" in one_line_error(run("new", "--merchant-type", "merchant", config=config))


def test_new_unwritable_file_is_one_line(config: Path, tmp_path: Path) -> None:
    line = one_line_error(run("new", "--png", str(tmp_path / "missing" / "qr.png"), config=config))
    assert line.startswith("error: cannot write")


def test_decode_text_and_json() -> None:
    result = run("decode", DYNAMIC)
    assert result.exit_code == 0
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert lines["transaction_amount"] == "50000" and lines["bill_number"] == "#0001" and lines["crc"] == "F3DA"
    assert "merchant_id" not in lines
    data = json.loads(run("decode", DYNAMIC, "--json").stdout)
    assert data == khqr.decode(DYNAMIC)
    tlv = json.loads(run("decode", VALID, "--tlv", "--json").stdout)
    assert tlv["29"] == {"00": "jonhsmith@nbcq"}


def test_decode_from_stdin_and_garbage() -> None:
    assert json.loads(run("decode", "-", "--json", stdin=VALID + "\n").stdout)["crc"] == "856B"
    assert "no KHQR field" in one_line_error(run("decode", "hello"))


def test_verify_valid_and_invalid() -> None:
    result = run("verify", VALID)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "valid\n", "")
    bad = run("verify", VALID[:-1] + "0")
    assert bad.exit_code == 1 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == ["invalid: KHQR provided is invalid: CRC is 8560 but the content gives 856B (code 8)"]


def test_verify_expiry_uses_now_or_at() -> None:
    assert run("verify", DYNAMIC, "--at", str(NOW)).exit_code == 0
    expired = run("verify", DYNAMIC)  # expired on 2025-01-01
    assert expired.exit_code == 1
    assert "This dynamic KHQR has expired" in expired.stderr and "(code 46)" in expired.stderr


def test_show_draws_an_existing_string(tmp_path: Path) -> None:
    png = tmp_path / "shown.png"
    result = run("show", DYNAMIC, "--invert", "--png", str(png))
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].strip() == ""  # inverted: the quiet zone is blank
    assert "50,000 KHR · Jonh Smith" in result.stdout
    assert png.read_bytes().startswith(b"\x89PNG")


def test_khqr_group_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["khqr", "--help"])
    assert result.exit_code == 0
    for command in ("new", "show", "decode", "verify"):
        assert command in result.stdout
