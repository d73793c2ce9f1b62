"""KHQR card throughput: PNG and SVG cards rendered per second over N distinct KHQR strings.

Run from a checkout: ``python bench/card_bench.py [--n 300]``. Every KHQR is distinct (amount,
currency, bill number and, for one in four, a Khmer merchant name vary), so nothing is served from
a cache across calls; the fonts are loaded once per process, as in a long-running server. Also
shown: the share of one card that is the QR matrix itself (``qr_matrix``, the ``qrcode`` library),
and a card drawn again for a KHQR drawn a moment ago, whose matrix the card module keeps.
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import khqr  # noqa: E402
from engine.khqr import card  # noqa: E402
from engine.khqr.card import render_card_svg  # noqa: E402
from engine.khqr.card_png import khmer_font_path, render_card_png  # noqa: E402
from engine.money import to_major  # noqa: E402

NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
EXPIRES_MS = NOW_MS + 15 * 60_000
BATCHES = 5


def make_khqrs(n: int) -> list[str]:
    """N distinct dynamic KHQR strings, as the payment engine issues them."""
    strings = []
    for i in range(n):
        currency = "USD" if i % 2 else "KHR"
        amount = to_major(100 + i * 7, currency) if currency == "USD" else to_major(1000 + i * 100, currency)
        khmer = dict(language_preference="km", merchant_name_alternate_language="ហាងកាហ្វេក្លាំង") if i % 4 == 0 else {}
        info = khqr.IndividualInfo(
            bakong_account_id=f"shop{i % 97}@devb", merchant_name="Coffee Klaing", currency=currency, amount=amount,
            bill_number=f"INV-{i:07d}", store_label="Main", expiration_timestamp=EXPIRES_MS, **khmer,
        )
        strings.append(khqr.generate(info, now_ms=NOW_MS).qr)
    assert len(set(strings)) == n
    return strings


def per_second(render: Callable[[str], object], strings: list[str]) -> tuple[float, float, int]:
    """(renders per second over all, in the best of 5 batches, mean output bytes)."""
    size = max(1, len(strings) // BATCHES)
    batches = [strings[i : i + size] for i in range(0, len(strings), size)]
    timings: list[float] = []
    total_bytes = 0
    gc.collect()
    for batch in batches:
        start = time.perf_counter()
        out = [render(qr) for qr in batch]
        timings.append((time.perf_counter() - start) / len(batch))
        total_bytes += sum(len(item) for item in out)  # type: ignore[arg-type]
    mean = sum(t * len(b) for t, b in zip(timings, batches, strict=True)) / len(strings)
    return 1 / mean, 1 / min(timings), total_bytes // len(strings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="distinct KHQR strings per case (default 300)")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")

    strings = make_khqrs(args.n)
    render_card_png(strings[0])  # load the fonts once, as a server would before its first card
    cases: list[tuple[str, Callable[[str], object]]] = [
        ("SVG", render_card_svg),
        ("PNG 600 px (default)", render_card_png),
        ("PNG 300 px", lambda qr: render_card_png(qr, size=300)),
        ("PNG 1200 px", lambda qr: render_card_png(qr, size=1200)),
        ("QR matrix alone", lambda qr: khqr.qr_matrix(qr)),
    ]
    # The same KHQR again (PNG and SVG of one payment, reloads): the card keeps recent matrices.
    again = strings[: min(len(strings), 50)]
    warm: list[tuple[str, Callable[[str], object]]] = [
        ("SVG, same KHQR again", render_card_svg),
        ("PNG, same KHQR again", render_card_png),
    ]
    font = khmer_font_path()
    print(f"KHQR cards, {args.n:,} distinct strings per case; Python {platform.python_version()} on "
          f"{platform.machine()} ({platform.system()}); Khmer font: {font or 'none (Latin-only PNG)'}")
    print(f"{'case':<22} {'cards/s (mean)':>15} {'best batch':>11} {'ms/card':>8} {'bytes':>8}")
    for name, render, inputs in [(*case, strings) for case in cases] + [(*case, again) for case in warm]:
        card._matrix_of.cache_clear()  # every string is new to each case...
        if inputs is again:
            for qr in again:  # ...except in the "again" cases
                render_card_svg(qr)
        mean, best, size = per_second(render, inputs)
        shown = "" if name == "QR matrix alone" else f"{size:>8,}"
        print(f"{name:<22} {mean:>15.1f} {best:>11.1f} {1000 / mean:>8.2f} {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
