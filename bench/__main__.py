"""Run every benchmark module in bench/ that has a `main()`, in name order, then the closing note.

`python -m bench scale scrape_latency` runs only those. The closing note lists every bound the benches
checked (bench/_bounds.py) with the figure, met or missed, and the load average while they ran.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from bench._bounds import closing_note, load_average


def main() -> int:
    only = set(sys.argv[1:])
    failed = 0
    for module in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
        if module.name.startswith("_") or (only and module.name not in only):
            continue
        print(f"\n== {module.name} ({load_average()}) ==", flush=True)
        try:
            bench = importlib.import_module(f"bench.{module.name}")
            bench.main([])
        except Exception as exc:  # noqa: BLE001 - one broken bench must not hide the others' figures
            failed += 1
            print(f"{module.name}: failed: {type(exc).__name__}: {exc}")
    note = closing_note(load_average())
    if note:
        print("\n" + note)
    return 1 if failed else 0


raise SystemExit(main())
