"""Grafana 11.6's dashboard schema, as the pinned grafana-foundation-sdk's generated types carry it.

The Python SDK ships no JSON schema file and no validator (the schema's JSON files and the Go SDK's
strict decoder live in the SDK's repository, and the Go module of the 11.6 build is not served here),
so the check is made of what the installed package does have: its typed models, generated from that
schema. A dashboard conforms when
- decoding it with the SDK's models (panel options, field config and queries by their plugin types)
  and encoding it again gives the same JSON: no key the 11.6 types do not know, none lost;
- every value decoded into a model field has that field's type (str, int, float, bool, enum value,
  list, nested model), read from the models' own type hints;
- the raw values of field-config override properties the dashboard uses (mappings, thresholds, links,
  colour, custom line and threshold styles) decode into their SDK types the same way.
"""

from __future__ import annotations

import enum
import json
import types
import typing
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as gmodel
from grafana_foundation_sdk.models import timeseries as ts_model

register_default_plugins()


def _encode(obj: Any) -> Any:
    return json.loads(json.dumps(obj, cls=JSONEncoder))


def _fits(value: Any, hint: Any) -> bool:
    if hint in (Any, object):
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        return isinstance(value, list) and all(_fits(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return isinstance(value, hint) or value in {m.value for m in hint}
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(hint, type) and isinstance(value, dict) and hasattr(hint, "from_json"):
        # some decoders keep a nested object as its raw JSON (Panel.links): decode it here
        decoded = hint.from_json(value)
        return bool(_encode(decoded) == value and not type_errors(decoded))
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def type_errors(obj: Any, path: str = "$") -> list[str]:
    """Model fields whose decoded value is not of the field's declared type."""
    if isinstance(obj, list):
        return [e for i, item in enumerate(obj) for e in type_errors(item, f"{path}[{i}]")]
    if isinstance(obj, dict):
        return [e for k, v in obj.items() for e in type_errors(v, f"{path}.{k}")]
    if not hasattr(obj, "to_json") or isinstance(obj, enum.Enum):
        return []
    try:
        hints = typing.get_type_hints(type(obj), globalns=vars(__import__(type(obj).__module__, fromlist=["*"])))
    except NameError:
        hints = {}
    errors = []
    for name, hint in hints.items():
        value = getattr(obj, name, None)
        if not _fits(value, hint):
            errors.append(f"{path}.{name}: {value!r} is not {hint}")
        errors += type_errors(value, f"{path}.{name}")
    return errors


_OVERRIDE_TYPES: dict[str, Any] = {
    "thresholds": gmodel.ThresholdsConfig,
    "color": gmodel.FieldColor,
    "custom.thresholdsStyle": common.GraphThresholdsStyleConfig,
    "custom.lineStyle": common.LineStyle,
}


def _override_errors(panel: dict[str, Any], where: str) -> list[str]:
    errors = []
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        for prop in override["properties"]:
            pid, value = prop["id"], prop["value"]
            if pid == "mappings":
                for mapping in value:
                    if mapping.get("type") != "value":
                        errors.append(f"{where}: mapping type {mapping.get('type')}")
                        continue
                    decoded = gmodel.ValueMap.from_json(mapping)
                    if _encode(decoded) != mapping:
                        errors.append(f"{where}: mapping {mapping} is not a ValueMap")
                    errors += type_errors(decoded, where)
            elif pid == "links":
                for link in value:
                    if set(link) - {"title", "url", "targetBlank"} or not isinstance(link.get("url"), str):
                        errors.append(f"{where}: data link {link}")
            elif pid in _OVERRIDE_TYPES:
                decoded = _OVERRIDE_TYPES[pid].from_json(value)
                if _encode(decoded) != value:
                    errors.append(f"{where}: {pid} {value} does not decode as {_OVERRIDE_TYPES[pid].__name__}")
                errors += type_errors(decoded, where)
            else:
                errors.append(f"{where}: override property {pid} is not checked here")
    return errors


def dashboard_errors(raw: dict[str, Any]) -> list[str]:
    """Every way `raw` departs from the SDK's Grafana 11.6 dashboard types (empty: it conforms)."""
    decoded = gmodel.Dashboard.from_json(raw)
    errors = []
    if _encode(decoded) != raw:
        errors.append("decoding and encoding with the SDK's types changes the JSON: unknown or mistyped keys")
    errors += type_errors(decoded)
    for i, panel in enumerate(raw.get("panels", [])):
        errors += _override_errors(panel, f"$.panels[{i}] ({panel.get('title')})")
    assert ts_model  # the timeseries plugin's types are registered by register_default_plugins()
    return errors
