"""The landing page: a status page a person reads on a phone during an incident.

Every failure mode of chapter 16, grouped by layer, failing ones first, each with its state, the reason
and its runbook link; then every probe. Plain HTML and CSS (no JavaScript), rendered from the engine's
snapshot and kept until the next one, like /metrics: a request does no I/O and, between probe runs,
no rendering either.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping

from exporter import __version__
from exporter.engine import Engine
from exporter.families import Absence
from exporter.status import STATES, Row, grouped, off_reason, rows

_CSS = """
:root{color-scheme:light dark;--fg:#1b1f24;--muted:#57606a;--line:#d0d7de;--bg:#fff;--card:#f6f8fa;
--failing:#b42318;--pending:#8a6100;--ok:#1a7f37;--off:#57606a;--unset:#6e40c9;--blind:#0b5cad}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9198a1;--line:#3d444d;--bg:#0d1117;
--card:#161b22;--failing:#ff7b72;--pending:#d29922;--ok:#3fb950;--off:#9198a1;--unset:#bc8cff;--blind:#58a6ff}}
*{box-sizing:border-box}
body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:var(--fg);background:var(--bg)}
main{max-width:64rem;margin:0 auto;padding:.75rem}
h1{font-size:1.3rem;margin:.25rem 0}
h2{font-size:1.1rem;margin:1.5rem 0 .5rem;padding-bottom:.25rem;border-bottom:1px solid var(--line)}
h2 small{font-weight:normal;color:var(--muted)}
a{color:var(--blind)}
nav,.asof{color:var(--muted);font-size:.9rem}
.summary{display:flex;flex-wrap:wrap;gap:.4rem;list-style:none;padding:0;margin:.75rem 0}
.summary li{border:1px solid var(--line);border-radius:1rem;padding:.1rem .7rem;font-size:.9rem}
.now{border-left:4px solid var(--failing);background:var(--card);padding:.5rem .75rem;margin:.75rem 0}
.now ul{margin:.25rem 0;padding-left:1.2rem}
.modes{list-style:none;padding:0;margin:0;display:grid;gap:.5rem;grid-template-columns:repeat(auto-fill,minmax(19rem,1fr))}
.fm{background:var(--card);border:1px solid var(--line);border-left:6px solid var(--off);border-radius:.4rem;
padding:.5rem .75rem;min-width:0}
.fm h3{font-size:1rem;margin:0 0 .25rem}
.fm p{margin:.2rem 0;overflow-wrap:anywhere}
.reason{font-size:.92rem}
.meta,.gap,.note{font-size:.85rem;color:var(--muted)}
.state{display:inline-block;font-size:.75rem;font-weight:bold;text-transform:uppercase;letter-spacing:.03em;
border-radius:.25rem;padding:0 .35rem;margin-right:.35rem;color:var(--bg);background:var(--off);vertical-align:.1em}
.failing{border-left-color:var(--failing)} .state.failing{background:var(--failing)}
.pending{border-left-color:var(--pending)} .state.pending{background:var(--pending)}
.ok{border-left-color:var(--ok)} .state.ok{background:var(--ok)}
.unset{border-left-color:var(--unset)} .state.unset{background:var(--unset)}
.blind{border-left-color:var(--blind)} .state.blind{background:var(--blind)}
.fm.failing{border-width:2px 2px 2px 6px;border-color:var(--failing)}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:.9rem;width:100%}
th,td{border-bottom:1px solid var(--line);padding:.3rem .5rem;text-align:left;vertical-align:top}
td{overflow-wrap:anywhere}
@media (max-width:30rem){main{padding:.5rem}.modes{grid-template-columns:1fr}th:nth-child(3),td:nth-child(3){display:none}}
"""

# CSS class per state (`not configured` and `blind spot` have a space).
_CLASS = {"failing": "failing", "pending": "pending", "ok": "ok", "off": "off", "not configured": "unset",
          "blind spot": "blind"}


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _utc(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


class StatusPage:
    """The rendered page, kept until the engine publishes a new snapshot."""

    def __init__(self, engine: Engine, runbook_base: str, absences: Mapping[str, Absence] | None = None) -> None:
        self._engine = engine
        self._base = runbook_base
        self._absences = dict(absences or {})
        self._generation = -1
        self._body = b""

    def render(self) -> bytes:
        if self._engine.generation != self._generation:
            self._generation = self._engine.generation
            self._body = self.html(time.time()).encode("utf-8")
        return self._body

    def html(self, now: float) -> str:
        all_rows = rows(self._engine, self._absences)
        counts = [(state, sum(1 for r in all_rows if r.state == state)) for state in STATES]
        summary = "".join(
            f'<li class="{_CLASS[s]}"><span class="state {_CLASS[s]}">{_e(s)}</span> {n}</li>' for s, n in counts if n
        )
        failing = [r for r in all_rows if r.state == "failing"]
        now_box = ""
        if failing:
            items = "".join(f'<li><a href="#{_e(r.entry.id)}">{_e(r.entry.heading)}</a></li>' for r in failing)
            now_box = f'<div class="now"><strong>Failing now: {len(failing)}</strong><ul>{items}</ul></div>'
        sections = []
        for layer, group in grouped(all_rows):
            bad = sum(1 for r in group if r.state == "failing")
            note = f" <small>{bad} failing</small>" if bad else ""
            cards = "".join(self._card(r) for r in group)
            sections.append(
                f'<section id="layer-{_e(layer.id)}"><h2>{_e(layer.title)}{note}</h2>'
                f'<ul class="modes">{cards}</ul></section>'
            )
        return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="30">
<title>{"FAILING " + str(len(failing)) + " · " if failing else ""}honeydue-exporter status</title>
<style>{_CSS}</style></head>
<body><main>
<h1>honeydue-exporter {_e(__version__)}: failure modes</h1>
<p class="asof">As of {_utc(now)} (the probes' latest runs; this page reloads every 30 s).</p>
<nav><a href="/metrics">/metrics</a> · <a href="/healthz">/healthz</a> · <a href="/readyz">/readyz</a>
· <a href="#probes">probes</a></nav>
<ul class="summary">{summary}</ul>
{now_box}
{"".join(sections)}
<h2 id="probes">Probes</h2>
<div class="scroll">{self._probe_table()}</div>
</main></body></html>
"""

    def _card(self, r: Row) -> str:
        entry, css = r.entry, _CLASS[r.state]
        links = [f'<a class="runbook" href="{_e(entry.runbook_url(self._base))}">runbook</a>']
        recovery = entry.recovery_url(self._base)
        if recovery:
            links.append(f'<a href="{_e(recovery)}">recovery ({_e(entry.chapter17)})</a>')
        probes = f"probes: {_e(', '.join(r.probes))} · " if r.probes else ""
        extra = "".join(f'<p class="gap">not watched here: {_e(gap)}</p>' for gap in r.gaps)
        if entry.blind_spot and r.state != "blind spot":
            extra += f'<p class="note">cannot see: {_e(entry.blind_spot)}</p>'
        if entry.planned:
            extra += f'<p class="note">planned: {_e(entry.planned)}</p>'
        return (
            f'<li class="fm {css}" id="{_e(entry.id)}" data-state="{_e(r.state)}">'
            f'<h3><span class="state {css}">{_e(r.state)}</span> {_e(entry.heading)}</h3>'
            f'<p class="reason">{_e(r.reason)}</p>{extra}'
            f'<p class="meta">{probes}{" · ".join(links)}</p></li>'
        )

    def _probe_table(self) -> str:
        body = []
        for probe in self._engine.probes:
            state = self._engine.states[probe.name]
            off = off_reason(probe)
            status = "off" if off else state.status
            why = off or (f"{state.reason}: {state.detail}" if state.status == "failing" else "")
            last = _utc(state.last_success) if state.last_success and not off else "never" if not off else "-"
            body.append(
                f'<tr class="{_e(_CLASS.get(status, "pending"))}"><td>{_e(probe.name)}</td>'
                f'<td><span class="state {_e(_CLASS.get(status, "pending"))}">{_e(status)}</span> {_e(why)}</td>'
                f"<td>{probe.interval:g} s / {probe.timeout:g} s</td><td>{_e(last)}</td></tr>"
            )
        return (
            "<table><thead><tr><th>probe</th><th>state</th><th>interval / timeout</th><th>last success</th>"
            f"</tr></thead><tbody>{''.join(body)}</tbody></table>"
        )
