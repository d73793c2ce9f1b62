"""The few JavaScript number semantics the SDK's verdicts depend on, reproduced exactly.

The official SDK reads TLV lengths with ``parseInt`` (so ``" 5"`` and ``"5a"`` both mean 5 and
``"XX"`` is NaN), checks currencies with ``parseInt``, and checks timestamps with ``Number(...)``
and the length of ``Number#toString``. To give the same answers on the same strings, those three
functions are reproduced here; nothing else in the package knows about JavaScript. NaN is ``None``.
"""

from __future__ import annotations

import math
import re

__all__ = ["js_number", "js_number_to_string", "js_parse_int", "js_trim"]

# ECMAScript WhiteSpace and LineTerminator code points (what String#trim and parseInt skip).
_JS_SPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_DIGITS36 = {c: i for i, c in enumerate("0123456789abcdefghijklmnopqrstuvwxyz")}
_DECIMAL_LITERAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_PREFIXED = {"0x": 16, "0X": 16, "0o": 8, "0O": 8, "0b": 2, "0B": 2}


def js_trim(text: str) -> str:
    """``String.prototype.trim``."""
    return text.strip(_JS_SPACE)


def js_parse_int(text: str) -> int | None:
    """``parseInt(text)`` with no radix: an int, or None where JavaScript gives NaN."""
    s = text.lstrip(_JS_SPACE)
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    radix = 10
    if s[:2] in ("0x", "0X"):
        radix = 16
        s = s[2:]
    value = 0
    count = 0
    for ch in s:
        digit = _DIGITS36.get(ch.lower())
        if digit is None or digit >= radix:
            break
        value = value * radix + digit
        count += 1
    if count == 0:
        return None
    return sign * value


def js_number(text: str) -> float | None:
    """``Number(text)`` for a string: a float, or None where JavaScript gives NaN."""
    s = js_trim(text)
    if not s:
        return 0.0
    if s in ("Infinity", "+Infinity"):
        return math.inf
    if s == "-Infinity":
        return -math.inf
    radix = _PREFIXED.get(s[:2])
    if radix is not None:
        body = s[2:]
        if not body:
            return None
        value = 0
        for ch in body:
            digit = _DIGITS36.get(ch.lower())
            if digit is None or digit >= radix:
                return None
            value = value * radix + digit
        return float(value)
    if _DECIMAL_LITERAL.match(s) is None:
        return None
    return float(s)


def js_number_to_string(x: float) -> str:
    """``Number.prototype.toString()`` (radix 10) for a finite or infinite float.

    Python's ``repr`` and ECMAScript both produce the shortest digit string that round-trips,
    choosing the closest one; only the layout differs, and that layout is rebuilt here.
    """
    if x != x:
        return "NaN"
    if x == 0:
        return "0"
    if x < 0:
        return "-" + js_number_to_string(-x)
    if math.isinf(x):
        return "Infinity"
    mantissa, _, exp = repr(x).partition("e")
    exponent = int(exp) if exp else 0
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    # Position of the decimal point relative to the start of `digits` (ECMAScript's n).
    n = len(whole) + exponent - (len(whole + frac) - len((whole + frac).lstrip("0")))
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    e = n - 1
    sign = "+" if e >= 0 else "-"
    head = digits[0] if k == 1 else digits[0] + "." + digits[1:]
    return f"{head}e{sign}{abs(e)}"
