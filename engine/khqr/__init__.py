"""KHQR, byte-compatible with the National Bank of Cambodia's JavaScript SDK (bakong-khqr 1.0.20).

Generate individual and merchant KHQR strings, read them back, verify them with the SDK's verdict,
hash them as Bakong does, and draw them for a phone to scan::

    from engine import khqr

    result = khqr.generate(khqr.IndividualInfo(
        bakong_account_id="shop@devb", merchant_name="Shop", currency="USD",
        amount=Decimal("12.50"), expiration_timestamp=expires_ms))
    result.qr, result.md5            # the string to show, the key to poll Bakong with
    khqr.verify(result.qr)           # True
    khqr.decode(result.qr)["transaction_amount"]   # "12.50"
    print(khqr.render_terminal(result.qr, caption=khqr.caption_for(result.qr)))

Modules: ``info`` (input dataclasses), ``generate``, ``decode``, ``verify``, ``tlv`` (EMV TLV in
UTF-16 code units), ``crc`` (CRC-16 and MD5), ``jsnum`` (the JavaScript number semantics the SDK's
verdicts depend on), ``errors`` (KHQRError and the SDK's codes), ``render`` (the bare code),
``card`` (the KHQR card a payer sees: header, merchant, amount, code, expiry; SVG and PNG).
"""

from engine.khqr.card import render_card_svg
from engine.khqr.card_png import render_card_png
from engine.khqr.crc import crc16, md5
from engine.khqr.decode import decode, decode_non_khqr
from engine.khqr.errors import ERROR_MESSAGES, KHQRError
from engine.khqr.generate import generate
from engine.khqr.info import IndividualInfo, KHQRResult, MerchantInfo
from engine.khqr.render import caption_for, qr_matrix, render_png, render_svg, render_terminal
from engine.khqr.verify import validate, verify

__all__ = [
    "ERROR_MESSAGES",
    "IndividualInfo",
    "KHQRError",
    "KHQRResult",
    "MerchantInfo",
    "caption_for",
    "crc16",
    "decode",
    "decode_non_khqr",
    "generate",
    "md5",
    "qr_matrix",
    "render_card_png",
    "render_card_svg",
    "render_png",
    "render_svg",
    "render_terminal",
    "validate",
    "verify",
]
