"""Structural CRDs for the VictoriaMetrics operator's VMRule, VMServiceScrape and VMPodScrape.

The operator's Go API module is not served by the module proxy here (github.com/VictoriaMetrics/operator/api:
403), so its CRDs cannot be generated from its types as the Prometheus operator's are. These schemas are
written from the operator's documented API (docs.victoriametrics.com/operator/api: VMRuleSpec, RuleGroup,
Rule, VMServiceScrapeSpec, Endpoint, VMPodScrapeSpec, PodMetricsEndpoint, RelabelConfig, NamespaceSelector,
BasicAuth, TLSConfig), every documented field of those types with its documented type, and no others: the API
server, applying with fieldValidation=Strict, rejects a field the documentation does not have. Nested types the
shipped objects never use (OAuth2, Authorization, AttachMetadata, VMScrapeParams, SecretOrConfigMap) are kept
as opaque objects; StringOrArray (a relabel rule's regex and if) accepts either shape.
"""

from __future__ import annotations

from typing import Any

GROUP, VERSION = "operator.victoriametrics.com", "v1beta1"

STR: dict[str, Any] = {"type": "string"}
INT: dict[str, Any] = {"type": "integer"}
BOOL: dict[str, Any] = {"type": "boolean"}
STR_ARRAY: dict[str, Any] = {"type": "array", "items": STR}
STR_MAP: dict[str, Any] = {"type": "object", "additionalProperties": STR}
VALUES: dict[str, Any] = {"type": "object", "additionalProperties": STR_ARRAY}  # url.Values
OPAQUE: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
STRING_OR_ARRAY: dict[str, Any] = {"x-kubernetes-preserve-unknown-fields": True}
INT_OR_STRING: dict[str, Any] = {"x-kubernetes-int-or-string": True}


def obj(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


SECRET_KEY_SELECTOR = obj({"name": STR, "key": STR, "optional": BOOL}, ("key",))
LABEL_SELECTOR = obj({
    "matchLabels": STR_MAP,
    "matchExpressions": array(obj({"key": STR, "operator": STR, "values": STR_ARRAY}, ("key", "operator"))),
})
NAMESPACE_SELECTOR = obj({"any": BOOL, "matchNames": STR_ARRAY})
RELABEL_CONFIG = obj({
    "action": STR, "if": STRING_OR_ARRAY, "labels": STR_MAP, "match": STR, "modulus": INT, "regex": STRING_OR_ARRAY,
    "replacement": STR, "separator": STR, "sourceLabels": STR_ARRAY, "source_labels": STR_ARRAY,
    "targetLabel": STR, "target_label": STR,
})
BASIC_AUTH = obj({"password": SECRET_KEY_SELECTOR, "password_file": STR, "username": SECRET_KEY_SELECTOR})
TLS_CONFIG = obj({"ca": OPAQUE, "caFile": STR, "cert": OPAQUE, "certFile": STR, "insecureSkipVerify": BOOL,
                  "keyFile": STR, "keySecret": SECRET_KEY_SELECTOR, "serverName": STR})
# EndpointScrapeParams + EndpointAuth + EndpointRelabelings, shared by Endpoint and PodMetricsEndpoint.
_SCRAPE_PARAMS = {
    "attach_metadata": OPAQUE, "authorization": OPAQUE, "basicAuth": BASIC_AUTH, "bearerTokenFile": STR,
    "bearerTokenSecret": SECRET_KEY_SELECTOR, "follow_redirects": BOOL, "honorLabels": BOOL, "honorTimestamps": BOOL,
    "interval": STR, "max_scrape_size": STR, "metricRelabelConfigs": array(RELABEL_CONFIG), "oauth2": OPAQUE,
    "params": VALUES, "path": STR, "proxyURL": STR, "relabelConfigs": array(RELABEL_CONFIG), "sampleLimit": INT,
    "scheme": STR, "scrapeTimeout": STR, "scrape_interval": STR, "seriesLimit": INT, "tlsConfig": TLS_CONFIG,
    "vm_scrape_params": OPAQUE,
}
ENDPOINT = obj({**_SCRAPE_PARAMS, "port": STR, "targetPort": INT_OR_STRING})
POD_METRICS_ENDPOINT = obj({**_SCRAPE_PARAMS, "filterRunning": BOOL, "port": STR, "portNumber": INT,
                            "targetPort": INT_OR_STRING})
_SCRAPE_SPEC = {"attach_metadata": OPAQUE, "jobLabel": STR, "namespaceSelector": NAMESPACE_SELECTOR,
                "podTargetLabels": STR_ARRAY, "sampleLimit": INT, "scrapeClass": STR, "selector": LABEL_SELECTOR,
                "seriesLimit": INT}
SERVICE_SCRAPE_SPEC = obj({**_SCRAPE_SPEC, "discoveryRole": STR, "endpoints": array(ENDPOINT), "targetLabels": STR_ARRAY},
                          ("endpoints",))
POD_SCRAPE_SPEC = obj({**_SCRAPE_SPEC, "podMetricsEndpoints": array(POD_METRICS_ENDPOINT)}, ("podMetricsEndpoints",))
RULE = obj({"alert": STR, "annotations": STR_MAP, "debug": BOOL, "expr": STR, "for": STR, "keep_firing_for": STR,
            "labels": STR_MAP, "record": STR, "update_entries_limit": INT})
RULE_GROUP = obj({
    "concurrency": INT, "eval_alignment": BOOL, "eval_delay": STR, "eval_offset": STR, "headers": STR_ARRAY,
    "interval": STR, "labels": STR_MAP, "limit": INT, "name": STR, "notifier_headers": STR_ARRAY, "params": VALUES,
    "rules": array(RULE), "tenant": STR, "type": STR,
}, ("name", "rules"))
RULE_SPEC = obj({"groups": array(RULE_GROUP)}, ("groups",))


def crd(kind: str, plural: str, spec: dict[str, Any]) -> dict[str, Any]:
    schema = obj({"apiVersion": STR, "kind": STR, "metadata": {"type": "object"}, "spec": spec, "status": OPAQUE},
                 ("spec",))
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP, "scope": "Namespaced",
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()},
            "versions": [{"name": VERSION, "served": True, "storage": True, "schema": {"openAPIV3Schema": schema},
                          "subresources": {"status": {}}}],
        },
    }


def crds() -> list[dict[str, Any]]:
    return [crd("VMRule", "vmrules", RULE_SPEC), crd("VMServiceScrape", "vmservicescrapes", SERVICE_SCRAPE_SPEC),
            crd("VMPodScrape", "vmpodscrapes", POD_SCRAPE_SPEC)]
