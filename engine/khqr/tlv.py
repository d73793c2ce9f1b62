"""The EMV TLV layer: lengths in UTF-16 code units, and reading TLV the way the SDK reads it.

A KHQR field is ``tag (2) + length (2) + value``, where the length counts the value's characters
as JavaScript counts them: UTF-16 code units (a Khmer letter is one, an emoji two). Reading works
on a *unit string* (``to_units``): a ``str`` whose every character is one UTF-16 code unit, so
Python slicing equals JavaScript slicing. Almost every real KHQR has no character outside the
Basic Multilingual Plane, and then the unit string is the string itself (no copy).

``cut`` is the SDK's ``cutString``: the length goes through ``parseInt`` and the slices follow
``String#slice`` for NaN and negative bounds, so malformed strings split exactly as in the SDK.
Callers stop when ``cut`` makes no progress; the SDK loops forever there.
"""

from __future__ import annotations

from array import array

from engine.khqr.jsnum import js_parse_int

__all__ = ["cut", "encode", "extract", "from_units", "read_fields", "template_fields", "to_units", "utf16_len"]

#: "00".."99" -> int: the fast path for well-formed two-digit lengths.
_TWO_DIGITS: dict[str, int] = {f"{i:02d}": i for i in range(100)}
#: Tag + length heads of the fields a KHQR is made of ("5913" -> ("59", 13)): one slice and one
#: lookup per field on the common path. Other heads take the general path.
_HEADS: dict[str, tuple[str, int]] = {
    f"{tag}{n:02d}": (tag, n)
    for tag in ("00", "01", "02", "03", "04", "05", "06", "07", "08", "15", "29", "30", "52", "53", "54",
                "58", "59", "60", "62", "63", "64", "99")
    for n in range(100)
}


def utf16_len(text: str) -> int:
    """The length JavaScript reports for ``text`` (UTF-16 code units)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) >> 1


def to_units(text: str) -> tuple[str, bool]:
    """``text`` as a unit string, and whether it differs from ``text`` (astral characters)."""
    if text.isascii() or max(text) <= "\uffff":
        return text, False
    units = array("H")
    units.frombytes(text.encode("utf-16-le", "surrogatepass"))
    return "".join(map(chr, units)), True


def from_units(units: str) -> str:
    """Back from a unit string: surrogate pairs become characters again (lone halves stay)."""
    return units.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def encode(tag: str, value: str) -> str:
    """One TLV field. The caller guarantees the value is at most 99 code units."""
    n = len(value) if value.isascii() else utf16_len(value)
    return f"{tag}{n:02d}{value}"


def _js_bound(size: int, x: int | None) -> int:
    """A ``String#slice`` bound: NaN (None) is 0, negatives count from the end, then clamped."""
    if x is None:
        return 0
    return max(size + x, 0) if x < 0 else min(x, size)


def _js_slice(units: str, start: int | None, end: int | None) -> str:
    """``String#slice(start, end)``."""
    lo = _js_bound(len(units), start)
    hi = _js_bound(len(units), end)
    return units[lo:hi] if hi > lo else ""


def cut(units: str) -> tuple[str, str, str]:
    """The SDK's ``cutString``: (tag, value, rest) of the first TLV field of a unit string."""
    n = _TWO_DIGITS.get(units[2:4])
    if n is not None:
        return units[:2], units[4 : 4 + n], units[4 + n :]
    length = js_parse_int(units[2:4])
    if length is None:
        return units[:2], "", units
    return units[:2], _js_slice(units, 4, 4 + length), units[_js_bound(len(units), 4 + length) :]


def extract(units: str) -> tuple[str, str, str] | None:
    """One well-formed TLV field as ``decodeNonKhqr`` accepts it, or None where it stops.

    Well-formed there means: a numeric tag, and a length (via ``parseInt``) equal to the number
    of code units actually present for the value.
    """
    tag = units[:2]
    if not tag or not (tag.isascii() and tag.isdigit()):
        return None
    n = _TWO_DIGITS.get(units[2:4])
    if n is None:
        n = js_parse_int(units[2:4])
        if n is None or n < 0:
            return None
    value = units[4 : 4 + n]
    if len(value) != n:
        return None
    return tag, value, units[4 + n :]


def read_fields(units: str) -> list[tuple[str, str]]:
    """The top-level fields of a KHQR as the SDK's readers walk them: ``[(tag, value), ...]``.

    The walk stops when a tag repeats the previous one (tag 30 counting as 29), and where the
    SDK would make no progress. Unknown tags are included; readers skip them.
    """
    fields: list[tuple[str, str]] = []
    append = fields.append
    heads = _HEADS.get
    size = len(units)
    last = ""
    i = 0
    while i < size:
        start = i + 4
        head = heads(units[i:start])
        if head is not None:
            tag, n = head
            if tag == last:
                break
            i = start + n
            append((tag, units[start:i]))
        else:
            tag, value, after = cut(units[i:])
            if tag == last:
                break
            append((tag, value))
            j = size - len(after)
            if j == i:
                break  # no progress: the SDK would spin here
            i = j
        last = "29" if tag == "30" else tag
    return fields


def template_fields(units: str, names: dict[str, str]) -> dict[str, str]:
    """A template value's known sub-fields, by name, as the SDK walks them (the last one wins).

    ``names`` maps sub-tags to names; other sub-tags are skipped. The SDK loops forever where
    a sub-field makes no progress (a length that does not parse, for one); the walk stops there.
    """
    found: dict[str, str] = {}
    heads = _HEADS.get
    size = len(units)
    i = 0
    while i < size:
        start = i + 4
        head = heads(units[i:start])
        if head is not None:
            name = names.get(head[0])
            i = start + head[1]
            if name is not None:
                found[name] = units[start:i]
            continue
        tag, value, after = cut(units[i:])
        name = names.get(tag)
        if name is not None:
            found[name] = value
        j = size - len(after)
        if j == i:
            break  # no progress: the SDK would spin here
        i = j
    return found
