// pint (github.com/cloudflare/pint, pinned in tests/peers/pint) over the generated rules/.
// tests/test_pint.py runs `pint --offline lint rules/` with this file from the repository root and fails
// on any problem of any severity: the checks that query a live Prometheus are off (--offline), every
// other built-in check is on. The standards tests/test_rules.py already checks (names, severity,
// summary, templated description, runbook_url, for > 0) are not repeated here; the blocks below add
// what pint checks and Python does not, and the places where a check is switched off say why.
// The rules are generated: fix what pint reports in exporter/catalog and run `honeydue-exporter render`.

parser {
  // The rule files only: rules/tests and rules/incidents are unit tests and incidents, not rule files.
  include = ["rules/[^/]+[.]rules[.]yml"]
}

// One exporter's view is (job, instance), the stable identity vmagent gives each scrape target
// (deploy/vmagent; exporter/catalog/gates.py BY). An alert that aggregates them away merges the views of
// different exporters (the main exporter with the netcheck pods, one node's netcheck with another's), and
// its result no longer joins the gates, which match on (job, instance).
rule {
  match {
    kind = "alerting"
  }
  aggregate ".+" {
    keep     = ["job", "instance"]
    severity = "bug"
  }
}

// Alerts about the cluster as a whole, not one exporter's view: NodesUnreachable counts netcheck pods across
// the nodes (one answer per cluster), SiteDownEverywhere joins the obs box's view with the exporter's,
// HoneydueExporterDown reads the exporter Deployment's scrapes by job
// (a restarted pod comes back under a new instance, and a crash loop must not split into one alert per pod),
// and ClusterSilentNodesAnswer's value is the number of origins answering the obs-probe (a count across the
// nodes, one per cluster, shown in its description).
// tests/test_pint.py checks these names are alerts the catalog ships.
rule {
  match {
    name = "(NodesUnreachable|HoneydueExporterDown|SiteDownEverywhere|ClusterSilentNodesAnswer)"
  }
  disable = ["promql/aggregate"]
}

// Watchdog is the dead man's switch: `vector(1)` is meant to fire all the time, and the receiver pages
// when it stops arriving. alerts/comparison ("always firing alert") is exactly its purpose.
rule {
  match {
    name = "Watchdog"
  }
  disable = ["alerts/comparison"]
}
