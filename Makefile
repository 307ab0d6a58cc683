# The two commands: `make run` and `make test`. Everything else is for maintainers.
.PHONY: run test check lint lock test-latest render bench clean

# The Python environment the checks run in (make test-latest points it at a throw-away one).
VENV ?= .venv

run:
	@scripts/venv.sh
	.venv/bin/honeydue-exporter $(if $(CONFIG),--config $(CONFIG)) run

# Set-up (packages, servers, the locked venv, Go peers), then every check.
test:
	@scripts/test-deps.sh
	@$(MAKE) --no-print-directory check

check:
	scripts/uv.sh lock --check
	@# our own modules' bytecode (skipped when up to date), read by every exporter and CLI the checks start
	$(VENV)/bin/python -m compileall -q exporter testbed tests
	$(VENV)/bin/ruff check exporter testbed tests $(wildcard bench)
	$(VENV)/bin/mypy
	$(VENV)/bin/honeydue-exporter render --check
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint:
	@scripts/venv.sh test
	.venv/bin/ruff check exporter testbed tests $(wildcard bench)
	.venv/bin/mypy

# Re-resolve uv.lock after a change to pyproject.toml (`make lock UPGRADE=1` moves every pin to the newest
# version pyproject.toml allows; `make test-latest` first shows what that would change).
lock:
	scripts/uv.sh lock $(if $(UPGRADE),--upgrade)

# The suite against the newest versions pyproject.toml allows, in a throw-away venv: drift made visible.
test-latest:
	@scripts/test-latest.sh

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
