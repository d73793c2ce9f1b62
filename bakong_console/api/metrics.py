"""The API's own counters and the Prometheus text exposition of ``GET /metrics``.

Hand-written exposition (format 0.0.4): a handful of counters and gauges do not need a client
library. Route labels are path templates (``/api/payments/status/{md5}``), never raw paths, and
unmatched paths share one label, so a scanner cannot blow up the series count.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping

__all__ = ["ApiMetrics", "MetricsText"]

#: Request duration histogram buckets, seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ApiMetrics:
    """Counters kept by the API process (reset when it restarts, as Prometheus expects)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.durations: dict[str, list[int]] = {}
        self.duration_sums: dict[str, float] = defaultdict(float)
        self.rate_limited = 0
        self.auth_failures = 0
        self.ip_blocks = 0
        self.blocked_requests = 0

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests[(method, route, status)] += 1
        buckets = self.durations.get(route)
        if buckets is None:
            buckets = self.durations[route] = [0] * (len(BUCKETS) + 1)
        buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.duration_sums[route] += seconds


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, object]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class MetricsText:
    """Builds one exposition: ``family`` declares a metric, ``sample`` adds its values."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[tuple[Mapping[str, object], float]]) -> None:
        self._lines.append(f"# HELP {name} {help_text}")
        self._lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self._lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def histogram(self, name: str, help_text: str, per_label: Mapping[str, tuple[list[int], float]], label: str) -> None:
        self._lines.append(f"# HELP {name} {help_text}")
        self._lines.append(f"# TYPE {name} histogram")
        for value, (counts, total) in sorted(per_label.items()):
            running = 0
            for bound, count in zip((*BUCKETS, float("inf")), counts, strict=True):
                running += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                self._lines.append(f"{name}_bucket{_labels({label: value, 'le': le})} {running}")
            self._lines.append(f"{name}_sum{_labels({label: value})} {_number(round(total, 6))}")
            self._lines.append(f"{name}_count{_labels({label: value})} {running}")

    def render(self) -> str:
        return "\n".join(self._lines) + "\n"
