"""`bakong-console khqr`: generate, show, decode and verify KHQR strings, and draw KHQR cards, offline.

``new`` takes the merchant's account, name, city and the rest from the ``[merchant]`` section of
the settings unless given on the command line, and the currency and the QR lifetime from
``[payments]``. Bad input is one line on stderr and a non-zero exit (the root maps engine errors).
"""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from bakong_console.cli.context import state
from engine import khqr
from engine.errors import InvalidInput
from engine.khqr.generate import current_ms
from engine.services.cards import card_format_of, write_file_whole

app = typer.Typer(help="Generate, show, decode and verify KHQR strings, and draw KHQR cards (offline).", no_args_is_help=True)


class MerchantType(str, enum.Enum):
    individual = "individual"
    merchant = "merchant"


def _read_qr(qr: str) -> str:
    """The QR argument, or standard input when it is "-" (long strings, pipes)."""
    if qr == "-":
        qr = sys.stdin.read()
    return qr.rstrip("\r\n")


def _write(path: Path, data: str | bytes) -> None:
    try:
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8", newline="\n")
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror or exc}", field=str(path)) from None


def _render_files(qr: str, *, png: Path | None, svg: Path | None, scale: int, caption: str | None) -> dict[str, str]:
    written: dict[str, str] = {}
    if png is not None:
        _write(png, khqr.render_png(qr, scale=scale, caption=caption))
        written["png"] = str(png)
    if svg is not None:
        _write(svg, khqr.render_svg(qr, caption=caption, scale=scale))
        written["svg"] = str(svg)
    return written


Option = typer.Option

# The string `show`, `decode`, `verify` and `card` read (see _read_qr).
QrArg = Annotated[str, typer.Argument(help="The KHQR string, or - to read it from standard input.")]
# The drawing options of `new` and `show`: both print a code to scan and can write it to files.
PngOpt = Annotated[Path | None, Option("--png", metavar="FILE", help="Also write the code as PNG.")]
SvgOpt = Annotated[Path | None, Option("--svg", metavar="FILE", help="Also write the code as SVG.")]
ScaleOpt = Annotated[int, Option("--scale", min=1, max=100, help="Pixels per module in PNG/SVG.")]
CaptionOpt = Annotated[bool, Option("--caption/--no-caption", help="Amount and merchant name under the code.")]
InvertOpt = Annotated[bool, Option("--invert", help="For terminals with a light background.")]


@app.command("new")
def new(
    ctx: typer.Context,
    amount: Annotated[str | None, Option("--amount", "-a", help="Amount in major units (12.50 USD, 40000 KHR). None or 0: a static QR.")] = None,
    currency: Annotated[str | None, Option("--currency", help="KHR or USD (or 116 / 840). Default: payments.currency.")] = None,
    merchant_type: Annotated[MerchantType | None, Option("--merchant-type", help="individual (tag 29) or merchant (tag 30). Default: merchant.type.")] = None,
    account: Annotated[str | None, Option("--account", help="Bakong account id, name@bank. Default: merchant.bakong_account_id.")] = None,
    name: Annotated[str | None, Option("--name", help="Merchant name (at most 25). Default: merchant.name.")] = None,
    city: Annotated[str | None, Option("--city", help="Merchant city (at most 15). Default: merchant.city.")] = None,
    merchant_id: Annotated[str | None, Option("--merchant-id", help="Merchant id (merchant QR). Default: merchant.merchant_id.")] = None,
    acquiring_bank: Annotated[str | None, Option("--acquiring-bank", help="Acquiring bank. Default: merchant.acquiring_bank.")] = None,
    account_information: Annotated[str | None, Option("--account-information", help="Account information (individual QR).")] = None,
    bill_number: Annotated[str | None, Option("--bill-number", help="Bill or invoice number (at most 25).")] = None,
    mobile_number: Annotated[str | None, Option("--mobile-number", help="Mobile number (at most 25).")] = None,
    store_label: Annotated[str | None, Option("--store-label", help="Store label (at most 25).")] = None,
    terminal_label: Annotated[str | None, Option("--terminal-label", help="Terminal label (at most 25).")] = None,
    purpose: Annotated[str | None, Option("--purpose", help="Purpose of transaction (at most 25).")] = None,
    language_preference: Annotated[str | None, Option("--language-preference", help="Alternate language code, e.g. km.")] = None,
    name_alternate: Annotated[str | None, Option("--name-alternate", help="Merchant name in the alternate language.")] = None,
    city_alternate: Annotated[str | None, Option("--city-alternate", help="Merchant city in the alternate language.")] = None,
    upi_account: Annotated[str | None, Option("--upi-account", help="UnionPay merchant account (KHR only).")] = None,
    merchant_category_code: Annotated[str | None, Option("--mcc", help="Merchant category code. Default: merchant.merchant_category_code.")] = None,
    expires_in: Annotated[int | None, Option("--expires-in", min=1, metavar="MINUTES", help="Lifetime of a dynamic QR. Default: payments.default_timeout_minutes.")] = None,
    expiration_timestamp: Annotated[int | None, Option("--expiration-timestamp", metavar="MS", help="Expiry as epoch milliseconds (instead of --expires-in).")] = None,
    as_json: Annotated[bool, Option("--json", help="Print a JSON object instead of the code.")] = False,
    png: PngOpt = None,
    svg: SvgOpt = None,
    scale: ScaleOpt = 8,
    caption: CaptionOpt = True,
    invert: InvertOpt = False,
) -> None:
    """Generate a KHQR: print the code to scan, the string and its MD5."""
    if expires_in is not None and expiration_timestamp is not None:
        raise InvalidInput("give --expires-in or --expiration-timestamp, not both", field="expires_in")
    settings = state(ctx).settings()
    merchant = settings.merchant
    kind = merchant_type.value if merchant_type else merchant.type
    now = current_ms()
    dynamic = amount is not None and amount.strip() not in ("", "0")
    if expiration_timestamp is None and dynamic:
        expiration_timestamp = now + (expires_in or settings.payments.default_timeout_minutes) * 60_000
    common = dict(
        bakong_account_id=account or merchant.bakong_account_id,
        merchant_name=name or merchant.name,
        merchant_city=city or merchant.city,
        currency=currency or settings.payments.currency,
        amount=amount,
        bill_number=bill_number,
        mobile_number=mobile_number or merchant.mobile_number or None,
        store_label=store_label or merchant.store_label or None,
        terminal_label=terminal_label or merchant.terminal_label or None,
        purpose_of_transaction=purpose,
        language_preference=language_preference,
        merchant_name_alternate_language=name_alternate,
        merchant_city_alternate_language=city_alternate,
        upi_account_information=upi_account,
        merchant_category_code=merchant_category_code or merchant.merchant_category_code,
        expiration_timestamp=expiration_timestamp,
    )
    info: khqr.IndividualInfo | khqr.MerchantInfo
    if kind == "merchant":
        info = khqr.MerchantInfo(
            **common,
            merchant_id=merchant_id or merchant.merchant_id,
            acquiring_bank=acquiring_bank or merchant.acquiring_bank,
        )
    else:
        info = khqr.IndividualInfo(
            **common,
            account_information=account_information or merchant.account_information or None,
            acquiring_bank=acquiring_bank or merchant.acquiring_bank or None,
        )
    result = khqr.generate(info, now_ms=now)
    text = khqr.caption_for(result.qr) if caption else None
    written = _render_files(result.qr, png=png, svg=svg, scale=scale, caption=text)
    if as_json:
        typer.echo(json.dumps({"qr": result.qr, "md5": result.md5, "fields": khqr.decode(result.qr), **written}, ensure_ascii=False))
        return
    typer.echo(khqr.render_terminal(result.qr, caption=text, invert=invert))
    typer.echo()
    typer.echo(f"KHQR: {result.qr}")
    typer.echo(f"MD5:  {result.md5}")
    for kind_name, path in written.items():
        typer.echo(f"{kind_name.upper()}:  {path}")


@app.command("show")
def show(
    qr: QrArg,
    png: PngOpt = None,
    svg: SvgOpt = None,
    scale: ScaleOpt = 8,
    caption: CaptionOpt = True,
    invert: InvertOpt = False,
) -> None:
    """Draw an existing KHQR string as a code to scan (it is not verified: see `verify`)."""
    qr = _read_qr(qr)
    text = khqr.caption_for(qr) if caption else None
    written = _render_files(qr, png=png, svg=svg, scale=scale, caption=text)
    typer.echo(khqr.render_terminal(qr, caption=text, invert=invert))
    for kind_name, path in written.items():
        typer.echo(f"{kind_name.upper()}:  {path}")


@app.command("decode")
def decode(
    qr: QrArg,
    as_json: Annotated[bool, Option("--json", help="Print every field as a JSON object (absent ones as null).")] = False,
    tlv: Annotated[bool, Option("--tlv", help="Split any EMV string into its tags instead (decodeNonKhqr).")] = False,
) -> None:
    """Print the fields of a KHQR string (no validation: see `verify`)."""
    qr = _read_qr(qr)
    if tlv:
        typer.echo(json.dumps(khqr.decode_non_khqr(qr), ensure_ascii=False, indent=None if as_json else 2))
        return
    fields = khqr.decode(qr)
    if as_json:
        typer.echo(json.dumps(fields, ensure_ascii=False))
        return
    present = {key: value for key, value in fields.items() if value is not None}
    if not present:
        raise khqr.KHQRError(8, "no KHQR field could be read")
    width = max(len(key) for key in present)
    for key, value in present.items():
        typer.echo(f"{key:<{width}}  {value}")


@app.command("verify")
def verify(
    qr: QrArg,
    at: Annotated[int | None, Option("--at", metavar="MS", help="Judge expiry at this epoch-milliseconds time instead of now.")] = None,
) -> None:
    """Exit 0 and print "valid" if the string is a valid KHQR; else exit 1 with the reason on stderr."""
    try:
        khqr.validate(_read_qr(qr), now_ms=at)
    except khqr.KHQRError as exc:
        typer.echo(f"invalid: {exc.message} (code {exc.code})", err=True)
        raise typer.Exit(1) from None
    typer.echo("valid")


@app.command("card")
def card(
    qr: QrArg,
    output: Annotated[Path, Option("--output", "-o", metavar="FILE", help="The card file: FILE.png or FILE.svg (the format follows the extension).")],
    size: Annotated[int | None, Option("--size", metavar="PIXELS", help="Width in pixels: PNG 200 to 4000 (default 600); SVG: the width it asks for.")] = None,
) -> None:
    """Draw a KHQR as the card a payer scans: KHQR header, merchant, amount, the code, expiry."""
    kind = card_format_of(output)
    qr = _read_qr(qr)
    data = khqr.render_card_png(qr, size=size) if kind == "png" else khqr.render_card_svg(qr, size=size).encode("utf-8")
    write_file_whole(output, data)
    typer.echo(f"{kind.upper()}:  {output}")
