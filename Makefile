# The two commands: `make run` and `make test`. Everything else is for maintainers.
.PHONY: run test lint render render-check bench clean

run:
	@scripts/venv.sh
	.venv/bin/honeydue-exporter $(if $(CONFIG),--config $(CONFIG)) run

test:
	@scripts/test-deps.sh
	.venv/bin/ruff check exporter testbed tests $(wildcard bench)
	.venv/bin/mypy
	.venv/bin/honeydue-exporter render --check
	.venv/bin/python -m pytest $(PYTEST_ARGS)

lint:
	@scripts/venv.sh test
	.venv/bin/ruff check exporter testbed tests $(wildcard bench)
	.venv/bin/mypy

# Re-generate rules/ and dashboards/ from exporter/catalog (commit the result).
render:
	@scripts/venv.sh
	.venv/bin/honeydue-exporter render $(if $(RUNBOOK_BASE_URL),--base-url $(RUNBOOK_BASE_URL)) \
		$(if $(GRAFANA_BASE_URL),--grafana-url $(GRAFANA_BASE_URL))

# Benchmarks (figures printed, never asserted; includes a 10-minute RSS soak). Not part of `make test`/CI.
bench:
	@BENCH=1 scripts/test-deps.sh
	.venv/bin/python -m bench

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache
