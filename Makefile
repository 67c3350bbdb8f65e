# The README's commands. Each does all of its own set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SERVICES := $(BIN)/python scripts/services.py

.PHONY: run test bench lint format install clean-var

run: $(STAMP) ## the service with the embedded Qingdao demo data
	RESCUE_DEMO=1 $(SERVICES) -- $(BIN)/python -m rescue demo run

CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

test: $(STAMP) $(CHROMIUM) ## the whole test suite against real PostgreSQL and Redis
	$(SERVICES) --test -- $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP) ## the benchmarks (see BENCHMARKS.md)
	$(SERVICES) -- $(BIN)/python -m bench $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy geo

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

install: $(STAMP)

# The browser tests drive Debian's Chromium through Playwright (never `playwright install`);
# the CJK fonts make the Chinese pages render in screenshots.
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

clean-var: ## stop and remove private PostgreSQL/Redis instances
	-test -f .var/postgres/postmaster.pid && runuser -u postgres -- pg_ctl -D .var/postgres stop
	-test -f .var/redis/redis.pid && kill $$(cat .var/redis/redis.pid)
	rm -rf .var
