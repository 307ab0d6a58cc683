"""The config's fields found from the models' types, for tests that must cover every one of a kind.

`numeric_fields()` lists every int/float field (durations, sizes, counts) reachable from `Config`, with a
minimal valid config around it (list sections get one valid item, so a field inside a target is reached);
`secret_fields()` lists every SecretStr field the same way. A field added to the models is covered
without editing a list here.
"""

from __future__ import annotations

import copy
import itertools
import types
from collections.abc import Callable, Iterator
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr

from exporter.config import Config

# One valid item for each section whose models sit in lists or dicts.
MINIMAL: dict[str, Any] = {
    "http": {"targets": [{"name": "t", "role": "other", "url": "http://127.0.0.1:9/"}]},
    "dns": {"resolvers": {"r": {"address": "127.0.0.1"}}, "lookups": [{"name": "x.example", "resolvers": ["r"]}]},
    "smtp": {"targets": [{"name": "m", "host": "127.0.0.1"}]},
    "tcp": {"targets": [{"name": "t", "address": "127.0.0.1:1"}],
            "discover": [{"backend": "api", "service": "api", "port": 8000}]},
}


def _auth(field: str | int) -> dict[str, Any]:
    """server.auth is valid with one scheme: a user name beside its password, a token unless `field` is one."""
    if str(field).startswith("password"):
        return {"username": "u"}
    return {} if str(field).startswith("token") else {"token": "x"}


# Models only reachable through an optional field: the keys that make them valid around `field`.
OPTIONAL_MODELS: dict[tuple[str, ...], Callable[[str | int], dict[str, Any]]] = {("server", "auth"): _auth}

Path = tuple[str | int, ...]


def _members(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) in (Union, types.UnionType):
        return tuple(a for a in get_args(annotation) if a is not type(None))
    return (annotation,)


def _walk(model: type[BaseModel], path: Path) -> Iterator[tuple[Path, Any]]:
    for name, info in model.model_fields.items():
        for member in _members(info.annotation):
            here = (*path, name)
            origin = get_origin(member)
            if isinstance(member, type) and issubclass(member, BaseModel):
                yield from _walk(member, here)
            elif origin in (list, tuple) and get_args(member):
                item = get_args(member)[0]
                if isinstance(item, type) and issubclass(item, BaseModel):
                    yield from _walk(item, (*here, 0))
            elif origin is dict:
                item = get_args(member)[1]
                if isinstance(item, type) and issubclass(item, BaseModel):
                    yield from _walk(item, (*here, "r"))
            else:
                yield here, member


def config_walk() -> list[tuple[Path, Any]]:
    """(path, type) of every leaf field reachable from Config (a union gives one row per member type)."""
    return list(_walk(Config, ()))


def numeric_fields() -> list[Path]:
    """Every int or float field (bool aside) reachable from Config."""
    return sorted(
        {path for path, kind in _walk(Config, ()) if kind in (int, float)}, key=lambda p: tuple(map(str, p))
    )


def float_fields() -> list[Path]:
    return [path for path, kind in _walk(Config, ()) if kind is float]


def secret_fields() -> list[Path]:
    return [path for path, kind in _walk(Config, ()) if kind is SecretStr]


def dotted(path: Path) -> str:
    return ".".join(str(p) for p in path)


def config_with(path: Path, value: Any) -> dict[str, Any]:
    """A minimal valid config (as YAML data) with `value` at `path`."""
    data: dict[str, Any] = copy.deepcopy(MINIMAL)
    for prefix, extra in OPTIONAL_MODELS.items():
        if path[: len(prefix)] == prefix:
            node = data
            for key in prefix:
                node = node.setdefault(key, {})
            node.update(extra(path[-1]))
    node: Any = data
    for key, following in itertools.pairwise(path):
        if isinstance(node, list):
            node = node[int(key)]
        else:
            node = node.setdefault(key, [] if isinstance(following, int) else {})
    node[path[-1]] = value
    return data
