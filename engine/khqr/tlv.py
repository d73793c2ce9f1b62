"""The EMV TLV layer: lengths in UTF-16 code units, and reading TLV the way the SDK reads it.

A KHQR field is ``tag (2) + length (2) + value``, where the length counts the value's characters
as JavaScript counts them: UTF-16 code units (a Khmer letter is one, an emoji two). Reading works
on a *unit string* (``to_units``): a ``str`` whose every character is one UTF-16 code unit, so
Python slicing equals JavaScript slicing. Almost every real KHQR has no character outside the
Basic Multilingual Plane, and then the unit string is the string itself (no copy).

``cut_at`` is the SDK's ``cutString`` applied at a position: the length goes through
``parseInt`` and the slices follow ``String#slice`` for NaN and negative bounds, so malformed
strings split exactly as in the SDK. The walkers stop where the SDK would make no progress (it
loops forever there), and work on positions rather than copies of the remainder, so reading any
string takes time linear in its length.
"""

from __future__ import annotations

from array import array

from engine.khqr.jsnum import js_parse_int

__all__ = [
    "cut_at",
    "extract_at",
    "from_units",
    "read_fields",
    "template_fields",
    "to_units",
    "utf16_len",
]

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


def _js_bound(size: int, x: int) -> int:
    """A ``String#slice`` bound on a string of ``size``: negatives count from the end, clamped."""
    return max(size + x, 0) if x < 0 else min(x, size)


def cut_at(units: str, i: int) -> tuple[str, str, int]:
    """The SDK's ``cutString`` on ``units[i:]``: (tag, value, position of the rest).

    The rest starts where the SDK's ``slicedString`` starts; when that is ``i`` itself the SDK
    would read the same field again forever.
    """
    n = _TWO_DIGITS.get(units[i + 2 : i + 4])
    if n is not None:
        return units[i : i + 2], units[i + 4 : i + 4 + n], min(i + 4 + n, len(units))
    length = js_parse_int(units[i + 2 : i + 4])
    if length is None:  # NaN: slice(4, NaN) is "", slice(NaN) is the whole rest
        return units[i : i + 2], "", i
    rest = len(units) - i
    lo = i + _js_bound(rest, 4)
    hi = i + _js_bound(rest, 4 + length)
    return units[i : i + 2], units[lo:hi] if hi > lo else "", hi


def extract_at(units: str, i: int) -> tuple[str, str, int] | None:
    """One well-formed field at ``i`` as ``decodeNonKhqr`` accepts it, or None where it stops.

    Well-formed there means: a numeric tag, and a length (via ``parseInt``) equal to the number
    of code units actually present for the value. Returns (tag, value, next position).
    """
    tag = units[i : i + 2]
    if not tag or not (tag.isascii() and tag.isdigit()):
        return None
    n = _TWO_DIGITS.get(units[i + 2 : i + 4])
    if n is None:
        n = js_parse_int(units[i + 2 : i + 4])
        if n is None or n < 0:
            return None
    value = units[i + 4 : i + 4 + n]
    if len(value) != n:
        return None
    return tag, value, i + 4 + n


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
            tag, value, j = cut_at(units, i)
            if tag == last:
                break
            append((tag, value))
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
        tag, value, j = cut_at(units, i)
        name = names.get(tag)
        if name is not None:
            found[name] = value
        if j == i:
            break  # no progress: the SDK would spin here
        i = j
    return found
