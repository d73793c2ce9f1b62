"""Redaction: what of a secret-bearing setting may be printed (URLs with their credentials hidden).

A database or Redis URL names where the engine connects, which an operator needs to see, and
often carries a password, which nobody may: ``redact_url`` keeps the first and hides the second,
whether it is in the user-info part or in a query parameter such as ``?password=``.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode, urlsplit

__all__ = ["MASK", "redact_url"]

#: What a hidden secret reads as.
MASK = "***"

#: Query parameters that carry a credential in the URLs the engine connects to (libpq, asyncpg, redis).
_SECRET_QUERY_KEYS = frozenset({"password", "passwd", "pass", "pwd", "token", "secret", "sslpassword", "access_token"})


def redact_url(url: str) -> str:
    """``url`` with any password (user-info or query parameter) replaced by ``***``.

    The scheme, user name, host, port, path and other parameters are kept. Text that does not
    parse as a URL is hidden whole, since it cannot be shown to be free of a secret.
    """
    if not url:
        return url
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hostport}" if has_password else f"{user}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(key.lower() in _SECRET_QUERY_KEYS for key, _ in pairs):
            query = urlencode(
                [(key, MASK if key.lower() in _SECRET_QUERY_KEYS else value) for key, value in pairs],
                safe="*",
                quote_via=quote,
            )
    if netloc == parts.netloc and query == parts.query:
        return url
    # Rebuilt by hand: urlunsplit would drop the empty authority of sqlite:////path or unix:///path.
    text = f"{parts.scheme}://{netloc}{parts.path}" if "://" in url else f"{parts.scheme}:{parts.path}"
    if query:
        text += f"?{query}"
    if parts.fragment:
        text += f"#{parts.fragment}"
    return text
