"""Just enough PromQL text handling to read the catalog's queries: the metrics they use, their comparisons.

Shared by the renderer (exporter.render.panels) and the no-data probe (exporter.probes.nodata), so
the grammar is written once.

The dashboard draws each alert's threshold on the panel that shows the alert's signal. Rather than
repeat thresholds in every catalog entry, they are read from the alert expressions: an expression is
split at its top-level set operators (`and`, `or`, `unless`), each positive part at its top-level
comparison, giving "this signal, compared like this, with this constant or this other series".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")
_SET_OP = re.compile(r"(?<![\w:])(and|or|unless)(?![\w:])")
_MODIFIER = re.compile(r"^\s*(bool\s*)?((on|ignoring)\s*\([^)]*\)\s*)?((group_left|group_right)\s*(\([^)]*\))?\s*)?")
_AGGREGATION = re.compile(r"^(sum|min|max|avg|count)(?: ?(?:by|without) ?\([^)]*\))? ?\(")
_SMOOTHING = re.compile(r"^(max|min|avg|last)_over_time\(")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
# The grammar's pieces, written once: a metric name, a label name, a double-quoted string's body.
_METRIC = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
_QUOTED = r'(?:[^"\\]|\\.)*'
_SELECTOR = re.compile(rf'^({_METRIC})(?:\{{((?:[^}}"]|"{_QUOTED}")*)\}})?$')
_MATCHER = re.compile(rf'({_LABEL})\s*(=~|!~|!=|=)\s*"({_QUOTED})"')
# For metric_names: strings, {...} and [...] blanked out, grouping clauses dropped, then identifiers.
_STRING = re.compile(rf'"{_QUOTED}"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(rf"(?<![\w:.])({_METRIC})(\s*\()?")
_NAME_MATCHER = re.compile(rf'__name__\s*=\s*"({_METRIC})"')
_KEYWORDS = frozenset({
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "offset", "atmodifier", "inf", "nan",
})


@dataclass(frozen=True)
class Comparison:
    """`lhs op rhs` at the top level of an alert; `value` when rhs is a number, else `rhs` is a query."""

    lhs: str
    op: str
    rhs: str

    @property
    def value(self) -> float | None:
        return float(self.rhs) if _NUMBER.match(self.rhs) else None

    def holds(self, left: float, right: float) -> bool:
        """Whether `left op right` is true: the signal is on the alert's side of the threshold."""
        return {
            "==": left == right, "!=": left != right, ">=": left >= right,
            "<=": left <= right, ">": left > right, "<": left < right,
        }[self.op]


def _scan(expr: str, start: int = 0) -> Iterator[tuple[int, int, bool]]:
    """(index, bracket depth after the character, whether it is part of a string) for each character.

    The one quote-aware reading of PromQL text: brackets inside strings do not count.
    """
    depth, quote, escaped = 0, "", False
    for i in range(start, len(expr)):
        ch = expr[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
            yield i, depth, True
            continue
        if ch in "\"'`":
            quote = ch
            yield i, depth, True
            continue
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        yield i, depth, False


def _depth_zero(expr: str) -> Iterator[int]:
    """Indexes of the characters of `expr` outside every (), {}, [] and string."""
    return (i for i, depth, quoted in _scan(expr) if not quoted and depth == 0 and expr[i] not in "({[)}]")


def normalize(expr: str) -> str:
    """The expression without whitespace outside strings (for comparing two spellings).

    One space stays where dropping it would join two words (`a and b`, `x offset 1h`).
    """
    out: list[str] = []
    for i, _, quoted in _scan(expr):
        ch = expr[i]
        if not quoted and ch.isspace():
            prev = out[-1] if out else ""
            nxt = expr[i + 1:].lstrip()[:1]
            if _word(prev) and _word(nxt) and out[-1] != " ":
                out.append(" ")
            continue
        out.append(ch)
    return "".join(out)


def _word(ch: str) -> bool:
    return bool(ch) and (ch.isalnum() or ch in "_:")


def _closing(expr: str, open_index: int) -> int:
    """Index of the bracket closing the one at `open_index` (or -1)."""
    for i, depth, quoted in _scan(expr, open_index):
        if not quoted and depth == 0 and expr[i] in ")}]":
            return i
    return -1


def strip_parens(expr: str) -> str:
    expr = expr.strip()
    while expr.startswith("(") and _closing(expr, 0) == len(expr) - 1:
        expr = expr[1:-1].strip()
    return expr


def _strip_modifier(expr: str) -> str:
    return expr[_MODIFIER.match(expr).end():].strip()  # type: ignore[union-attr]  # the pattern matches ""


_LABEL_FUNCTION = re.compile(r"^label_(?:replace|join)\s*\(")


def comparisons(expr: str) -> list[Comparison]:
    """The top-level comparisons that must hold for the alert to fire (`unless` parts excluded); a
    label_replace/label_join around the whole expression only renames labels, so its first argument's."""
    expr = strip_parens(expr)
    relabel = _LABEL_FUNCTION.match(expr)
    if relabel and _closing(expr, relabel.end() - 1) == len(expr) - 1:
        inner = expr[relabel.end():-1]
        commas = [i for i in _depth_zero(inner) if inner[i] == ","]
        return comparisons(inner[:commas[0]]) if commas else []
    zero = set(_depth_zero(expr))
    cuts = [m for m in _SET_OP.finditer(expr) if m.start() in zero]
    if cuts:
        found: list[Comparison] = []
        start, negated = 0, False
        for match in [*cuts, None]:
            end = match.start() if match else len(expr)
            if not negated:
                found += comparisons(_strip_modifier(expr[start:end]))
            if match:
                start, negated = match.end(), match.group(1) == "unless"
        return found
    for i in sorted(zero):
        two = expr[i:i + 2]
        op = two if two in COMPARISONS else expr[i] if expr[i] in "<>" else ""
        if op and not (op in "<>" and expr[i + 1:i + 2] == "="):
            lhs, rhs = expr[:i].strip(), _strip_modifier(expr[i + len(op):])
            if lhs and rhs:
                return [Comparison(strip_parens(lhs), op, strip_parens(rhs))]
    return []


def core(expr: str) -> str:
    """What an expression shows before aggregation or smoothing: `sum by (x) (max_over_time(m[5m]))` -> `m`.

    A trailing filter (`m == 1`) is dropped too: the panel showing `m` shows the filtered series.
    """
    text = normalize(strip_parens(expr))
    while True:
        found = comparisons(text)
        if found and found[0].value is not None and len(found) == 1 and not _SET_OP.search(text):
            text = normalize(found[0].lhs)
            continue
        match = _AGGREGATION.match(text) or _SMOOTHING.match(text)
        if match and _closing(text, match.end() - 1) == len(text) - 1:
            inner = text[match.end():-1]
            if _SMOOTHING.match(text):
                inner = re.sub(r"\[[^\]]+\]$", "", inner)
            text = normalize(strip_parens(inner))
            continue
        return text


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (function names, keywords and label names excluded)."""
    names = set(_NAME_MATCHER.findall(expr))
    text = _STRING.sub('""', expr)
    text = _BRACES.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    for match in _IDENT.finditer(text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in _KEYWORDS or re.fullmatch(r"\d.*", word):
            continue
        names.add(word)
    return names


def selector(expr: str) -> tuple[str, list[tuple[str, str, str]]] | None:
    """(metric, [(label, op, value)]) of a plain series selector, else None."""
    match = _SELECTOR.match(normalize(expr))
    if not match:
        return None
    return match.group(1), _MATCHER.findall(match.group(2) or "")


def _allowed(matchers: list[tuple[str, str, str]], label: str) -> set[str] | None:
    """The values a selector lets `label` take, when it names them (`=` or a regex of plain words)."""
    for name, op, value in matchers:
        if name == label and op == "=":
            return {value}
        if name == label and op == "=~" and re.fullmatch(r"[\w.-]+(\|[\w.-]+)*", value):
            return set(value.split("|"))
    return None


def shows(query: str, signal: str) -> bool:
    """Whether a panel query shows the series an alert compares (every one of them, maybe more)."""
    query_core, signal_core = core(query), core(signal)
    if query_core == signal_core:
        return True
    q, s = selector(query_core), selector(signal_core)
    if q is None or s is None or q[0] != s[0]:
        return False
    for label, op, value in q[1]:
        allowed = _allowed(s[1], label)
        if allowed is None:
            if (label, op, value) not in s[1]:
                return False
            continue
        for candidate in allowed:
            matched = re.fullmatch(value, candidate) is not None if op in ("=~", "!~") else candidate == value
            if matched != (op in ("=", "=~")):
                return False
    return True


def with_matcher(expr: str, metrics: set[str], matcher: str) -> str:
    """`expr` with `matcher` (e.g. `node=~"$node"`) added to every selector of one of `metrics`."""
    names = "|".join(sorted((re.escape(m) for m in metrics), key=len, reverse=True))
    if not names:
        return expr
    pattern = re.compile(rf"(?<![\w:\"])({names})(?![\w:])(\{{)?")

    def add(match: re.Match[str]) -> str:
        return f"{match.group(1)}{{{matcher}," if match.group(2) else f"{match.group(1)}{{{matcher}}}"

    return pattern.sub(add, expr)
