"""Run a module the way the production image would import it: without the test, drill and bench extras.

The development venv also holds what `pip install -e '.[test,bench]'` brought, and some runtime
libraries import optional packages when they find them (the Kubernetes client's dynamic module imports
kubernetes_validate, with jsonschema and rpds: several MiB of RSS the image never has). Memory figures
taken in the venv would charge the exporter for them. `blocked_modules()` (run in the bench process)
lists the top-level modules of every installed distribution outside the runtime dependency closure of
honeydue-exporter; this launcher makes importing them fail as if they were absent, then runs the module:

    python bench/_runtime.py BLOCKED_COMMA_LIST MODULE|SCRIPT.py [ARGS...]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def _parse(requirement: str) -> tuple[str, set[str], str]:
    """(normalized name, extras asked for, marker) of a requirement string."""
    spec, _, marker = requirement.partition(";")
    match = re.match(r"\s*([A-Za-z0-9._-]+)\s*(?:\[([^\]]*)\])?", spec)
    assert match is not None, requirement
    extras = {e.strip() for e in (match.group(2) or "").split(",") if e.strip()}
    return match.group(1).lower().replace("_", "-"), extras, marker


def runtime_distributions(root: str = "honeydue-exporter") -> set[str]:
    """The distribution `root` and everything it needs without its extras, recursively (normalized names).

    A dependency's own extras that are asked for (psycopg[binary]) are followed; markers other than
    `extra` are taken as true (this is Linux), which can only block less.
    """
    from importlib import metadata

    seen: set[tuple[str, frozenset[str]]] = set()
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for requirement in requires:
            dependency, wanted, marker = _parse(requirement)
            asked = re.findall(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
            if asked and not set(asked) & extras:
                continue
            todo.append((dependency, frozenset(wanted)))
    return {name for name, _ in seen}


def blocked_modules() -> list[str]:
    """Top-level modules that only distributions outside the runtime closure provide."""
    from importlib import metadata

    runtime = runtime_distributions()
    blocked = []
    for module, distributions in metadata.packages_distributions().items():
        names = {d.lower().replace("_", "-") for d in distributions}
        if module.isidentifier() and not module.startswith("_") and not names & runtime and module != "exporter":
            blocked.append(module)
    return sorted(blocked)


def production_config_text(secrets_dir: Path) -> str:
    """deploy/overlays/example/config.yml (the production shape) with its secrets under `secrets_dir`, each file
    it names written there."""
    text = (Path(__file__).resolve().parent.parent / "deploy" / "overlays" / "example" / "config.yml").read_text()
    text = text.replace("/etc/honeydue-exporter/secrets", str(secrets_dir))
    for name in sorted(set(re.findall(re.escape(str(secrets_dir)) + r"/([\w.-]+)", text))):
        (secrets_dir / name).write_text("bench-secret-value")
    return text


def image_environment() -> dict[str, str]:
    """The Python and malloc settings the image's final stage sets (ENV lines of deploy/Dockerfile)."""
    found: dict[str, str] = {}
    stage = (Path(__file__).resolve().parent.parent / "deploy" / "Dockerfile").read_text().rsplit("\nFROM ", 1)[-1]
    for name, value in re.findall(r"\b((?:PYTHON|MALLOC_)[A-Z_]*)=(\S+)", stage):
        found[name] = value
    return found


class _Blocker:
    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r} (not in the runtime image)", name=fullname)


def main() -> None:
    import runpy

    blocked, module, *args = sys.argv[1:]
    sys.meta_path.insert(0, _Blocker(set(filter(None, blocked.split(",")))))
    sys.argv = [module, *args]
    if module.endswith(".py"):
        runpy.run_path(module, run_name="__main__")
    else:
        runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
