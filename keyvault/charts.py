"""The key page's chart, drawn on the server as SVG: retrievals and failure reports per hour.

No script and no inline style (the pages' Content-Security-Policy is `default-src 'self'`):
the geometry is computed here and written as SVG attributes; colours come from classes in the
site's stylesheet. Each bar carries a `<title>` with its hour and numbers, and the whole chart
has a text summary for screen readers.
"""

from dataclasses import dataclass

WIDTH = 840
HEIGHT = 180
AXIS = 20  # room for the day labels at the bottom
TOP = 8


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    baseline: float
    retrievals: list[Bar]
    failures: list[Bar]
    days: list[tuple[float, str]]
    peak: int
    total_retrievals: int
    total_failures: int

    @property
    def summary(self) -> str:
        hours = len(self.retrievals)
        return (
            f"{self.total_retrievals} secret retrievals and {self.total_failures} failure "
            f"reports in the last {hours} hours; the busiest hour had {self.peak}."
        )


def activity_chart(activity) -> Chart:
    """The chart of `activity` (`keyvault.selectors.key_activity`'s hours, oldest first): per
    hour, a retrievals bar with the failures bar drawn over its right half, on one scale."""
    hours = max(len(activity), 1)
    peak = max([max(a.retrievals, a.failures) for a in activity] or [0])
    slot = WIDTH / hours
    plot = HEIGHT - AXIS - TOP
    baseline = HEIGHT - AXIS

    def bar(index: int, value: int, offset: float, width: float, title: str) -> Bar:
        height = (value / peak * plot) if peak else 0
        return Bar(
            x=round(index * slot + offset, 2),
            y=round(baseline - height, 2),
            width=round(width, 2),
            height=round(height, 2),
            title=title,
        )

    retrievals, failures, days = [], [], []
    for index, hour in enumerate(activity):
        label = f"{hour.hour:%Y-%m-%d %H}:00 UTC"
        retrievals.append(
            bar(index, hour.retrievals, 0, slot * 0.9, f"{label}: {hour.retrievals} retrievals")
        )
        failures.append(
            bar(
                index,
                hour.failures,
                slot * 0.45,
                slot * 0.45,
                f"{label}: {hour.failures} failure reports",
            )
        )
        if hour.hour.hour == 0:
            days.append((round(index * slot, 2), f"{hour.hour:%a %d}"))
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        baseline=baseline,
        retrievals=retrievals,
        failures=failures,
        days=days,
        peak=peak,
        total_retrievals=sum(a.retrievals for a in activity),
        total_failures=sum(a.failures for a in activity),
    )
