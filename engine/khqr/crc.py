"""Checksums: the KHQR CRC (CRC-16/CCITT-FALSE) and the MD5 Bakong finds a payment by.

Both hash the UTF-8 bytes of the text, as the SDK does (Node's ``Buffer.from``). A lone UTF-16
surrogate, which only a deliberately broken ``str`` can hold, is hashed as U+FFFD like Node does,
instead of raising.
"""

from __future__ import annotations

import hashlib
from binascii import crc_hqx

__all__ = ["crc16", "md5", "utf8"]


def utf8(text: str) -> bytes:
    """The UTF-8 bytes Node would produce for ``text``."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace").encode()


def crc16(text: str) -> str:
    """CRC-16/CCITT-FALSE of ``text``'s UTF-8 bytes as 4 uppercase hex digits.

    For a KHQR, ``text`` is everything before the CRC value, including the ``6304`` that
    introduces it.
    """
    return f"{crc_hqx(utf8(text), 0xFFFF):04X}"


def md5(text: str) -> str:
    """Lowercase hex MD5 of ``text``'s UTF-8 bytes: for a KHQR, the key Bakong knows it by."""
    return hashlib.md5(utf8(text), usedforsecurity=False).hexdigest()
