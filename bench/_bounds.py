"""The bounds of issue 15, as each bench measures them: collected here, printed as the closing note.

A bench calls `record` for every bound it checks; `python -m bench` (or a single bench) prints them
all at the end with `closing_note`: the figure, the bound, met or missed, and why a miss happened.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bound:
    name: str
    figure: str
    bound: str
    met: bool
    why: str = ""


RECORDED: list[Bound] = []


def record(name: str, figure: str, bound: str, met: bool, why: str = "") -> None:
    RECORDED.append(Bound(name, figure, bound, met, why))


def closing_note(load: str = "") -> str:
    if not RECORDED:
        return ""
    from bench._peers import table

    rows = [(b.name, b.figure, b.bound, "met" if b.met else "MISSED", b.why) for b in RECORDED]
    head = "Closing note: the bounds" + (f" ({load})" if load else "")
    return head + "\n" + table(("bound", "figure", "limit", "verdict", "why (for a miss) / note"), rows)


def load_average() -> str:
    with open("/proc/loadavg") as f:
        one, five, fifteen = f.read().split()[:3]
    return f"load average {one} {five} {fifteen} on {__import__('os').cpu_count()} cores"
