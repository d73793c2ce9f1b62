"""How the CLI prints reports: columns for people, JSON and CSV for the accountant's tools.

Amounts are exact: integer minor units in JSON and CSV (``*_minor``, with the currency beside
them), formatted per currency for people. No line ever adds two currencies.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from bakong_console.cli.render import iso_utc, local_time
from engine.money import format_amount
from engine.report_records import Adjustment, CurrencyTotal, DayClose, DayReport, GroupTotal, OpenItem, RangeReport, StatusTotal

__all__ = ["adjustment_json", "close_json", "day_csv", "day_json", "day_text", "range_csv", "range_json", "range_text"]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(round(seconds))
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _total_json(t: CurrencyTotal) -> dict[str, Any]:
    return {"currency": t.currency, "payments": t.payments, "paid_count": t.paid_count, "paid_minor": t.paid_minor}


def _group_json(g: GroupTotal) -> dict[str, Any]:
    return {"key": g.key, **_total_json(CurrencyTotal(g.currency, g.payments, g.paid_count, g.paid_minor))}


def _status_json(s: StatusTotal) -> dict[str, Any]:
    return {"status": s.status, "currency": s.currency, "count": s.count, "amount_minor": s.amount_minor}


def _open_json(o: OpenItem) -> dict[str, Any]:
    return {"payment_id": o.payment_id, "status": o.status, "currency": o.currency, "amount_minor": o.amount_minor, "created_at": iso_utc(o.created_at)}


def adjustment_json(a: Adjustment) -> dict[str, Any]:
    return {
        "payment_id": a.payment_id, "currency": a.currency, "amount_minor": a.amount_minor, "from_status": a.from_status,
        "to_status": a.to_status, "at": iso_utc(a.at), "actor": a.actor, "payment_day": a.payment_day.isoformat(),
        "landed_on": a.landed_on.isoformat(),
    }  # fmt: skip


def close_json(c: DayClose) -> dict[str, Any]:
    return {
        "day": c.day.isoformat(),
        "closed_at": iso_utc(c.closed_at),
        "closed_by": c.closed_by,
        "forced": c.forced,
        "reason": c.reason,
        "totals": [_total_json(t) for t in c.totals],
        "terminals": [_group_json(g) for g in c.terminals],
        "statuses": [_status_json(s) for s in c.statuses],
        "open_items": [_open_json(o) for o in c.open_items],
        "adjustments": [adjustment_json(a) for a in c.adjustments],
    }


def day_json(r: DayReport) -> dict[str, Any]:
    return {
        "day": r.day.isoformat(),
        "timezone": "Asia/Phnom_Penh",
        "start": iso_utc(r.start),
        "end": iso_utc(r.end),
        "generated_at": iso_utc(r.generated_at),
        "terminal": r.terminal,
        "totals": [_total_json(t) for t in r.totals],
        "statuses": [_status_json(s) for s in r.statuses],
        "hours": [{"hour": h.hour, "payments": h.payments, "last_week": h.last_week} for h in r.hours],
        "terminals": [_group_json(g) for g in r.terminals],
        "cashiers": [_group_json(g) for g in r.cashiers],
        "median_seconds_to_paid": r.median_seconds_to_paid,
        "bakong_requests": {"used": r.bakong.used, "budget": r.bakong.budget, "by_hour": list(r.bakong.by_hour)},
        "open_count": r.open_count,
        "open_items": [_open_json(o) for o in r.open_items],
        "close": close_json(r.close) if r.close else None,
        "adjustments_in": [adjustment_json(a) for a in r.adjustments_in],
        "adjustments_out": [adjustment_json(a) for a in r.adjustments_out],
        "reconciliation": dict(r.reconciliation) or None,
    }


_CSV_HEAD = ["section", "key", "currency", "payments", "paid_count", "paid_minor"]


def _csv(rows: list[list[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_CSV_HEAD)
    writer.writerows(rows)
    return out.getvalue()


def day_csv(r: DayReport) -> str:
    """One row per figure: (section, key, currency, payments, paid_count, paid_minor)."""
    rows: list[list[Any]] = [["total", r.day.isoformat(), t.currency, t.payments, t.paid_count, t.paid_minor] for t in r.totals]
    rows += [["status", s.status, s.currency, s.count, "", s.amount_minor] for s in r.statuses]
    rows += [["hour", f"{h.hour:02d}", "", h.payments, "", ""] for h in r.hours]
    rows += [["terminal", g.key or "", g.currency, g.payments, g.paid_count, g.paid_minor] for g in r.terminals]
    rows += [["cashier", g.key or "", g.currency, g.payments, g.paid_count, g.paid_minor] for g in r.cashiers]
    rows += [["adjustment_in", a.payment_id, a.currency, "", "", a.amount_minor] for a in r.adjustments_in]
    rows += [["adjustment_out", a.payment_id, a.currency, "", "", a.amount_minor] for a in r.adjustments_out]
    return _csv(rows)


def range_json(r: RangeReport) -> dict[str, Any]:
    return {
        "from": r.first.isoformat(),
        "to": r.last.isoformat(),
        "timezone": "Asia/Phnom_Penh",
        "by": r.by,
        "terminal": r.terminal,
        "rows": [_group_json(g) for g in r.rows],
        "totals": [_total_json(t) for t in r.totals],
    }


def range_csv(r: RangeReport) -> str:
    rows: list[list[Any]] = [[r.by, g.key or "", g.currency, g.payments, g.paid_count, g.paid_minor] for g in r.rows]
    rows += [["total", "", t.currency, t.payments, t.paid_count, t.paid_minor] for t in r.totals]
    return _csv(rows)


def _totals_lines(totals: tuple[CurrencyTotal, ...]) -> list[str]:
    if not totals:
        return ["  no payments"]
    return [f"  {t.currency:<4} {t.payments:>9} {t.paid_count:>9} {format_amount(t.paid_minor, t.currency):>22}" for t in totals]


def _group_lines(groups: tuple[GroupTotal, ...], empty: str = "api/cli") -> list[str]:
    return [
        f"  {(g.key or empty)[:24]:<24} {g.currency:<4} {g.payments:>7} {g.paid_count:>7} {format_amount(g.paid_minor, g.currency):>20}"
        for g in groups
    ]


def _adjustment_line(a: Adjustment) -> str:
    return (
        f"  {a.payment_id}  {a.payment_day.isoformat()} -> {a.landed_on.isoformat()}  "
        f"{a.from_status or '-'}->{a.to_status}  {format_amount(a.amount_minor, a.currency)}  {a.actor}"
    )


def day_text(r: DayReport) -> str:
    scope = f"terminal {r.terminal}" if r.terminal else "all terminals"
    lines = [f"Day report {r.day.isoformat()} (Asia/Phnom_Penh), {scope}", f"generated {local_time(r.generated_at)}", ""]
    lines += ["Totals  payments      paid            paid amount", *_totals_lines(r.totals), ""]
    lines.append(f"Median time from created to paid: {_duration(r.median_seconds_to_paid)}")
    lines.append(f"Bakong requests used: {r.bakong.used} of {r.bakong.budget}")
    lines += ["", "Status mix"]
    lines += [f"  {s.status:<13} {s.currency:<4} {s.count:>7} {format_amount(s.amount_minor, s.currency):>22}" for s in r.statuses] or ["  -"]
    lines += ["", "By hour  payments (same hour last week)"]
    lines += [f"  {h.hour:02d}  {h.payments:>6} ({h.last_week})" for h in r.hours if h.payments or h.last_week] or ["  -"]
    lines += ["", "By terminal                   cur  payments    paid          paid amount", *(_group_lines(r.terminals) or ["  -"])]
    lines += ["", "By cashier                    cur  payments    paid          paid amount", *(_group_lines(r.cashiers) or ["  -"])]
    lines += ["", f"Waiting for a decision: {r.open_count}"]
    lines += [f"  {o.payment_id}  {o.status:<12} {format_amount(o.amount_minor, o.currency):>16}  {local_time(o.created_at)}" for o in r.open_items]
    if r.close is not None:
        forced = f" (forced: {r.close.reason})" if r.close.forced else ""
        lines += ["", f"Closed {local_time(r.close.closed_at)} by {r.close.closed_by}{forced}; totals as frozen then:"]
        lines += _totals_lines(r.close.totals)
    if r.adjustments_in:
        lines += ["", "Adjustments to closed days, recorded on this day:", *(_adjustment_line(a) for a in r.adjustments_in)]
    if r.adjustments_out:
        lines += ["", "Changes after this day was closed (recorded on a later day):", *(_adjustment_line(a) for a in r.adjustments_out)]
    if r.reconciliation:
        rec = r.reconciliation
        lines += ["", f"Paid this day, checked with Bakong: reconciled {rec['reconciled']}, flagged {rec['flagged']}, not yet checked {rec['unchecked']}"]
    return "\n".join(lines)


def range_text(r: RangeReport) -> str:
    scope = f"terminal {r.terminal}" if r.terminal else "all terminals"
    lines = [f"Report {r.first.isoformat()} to {r.last.isoformat()} (Asia/Phnom_Penh) by {r.by}, {scope}", ""]
    lines += [f"{r.by:<26}cur  payments    paid          paid amount", *(_group_lines(r.rows, empty="-") or ["  no payments"])]
    lines += ["", "Totals  payments      paid            paid amount", *_totals_lines(r.totals)]
    return "\n".join(lines)

