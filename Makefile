# The two commands: `make demo` and `make test`. Both install what they need first: Debian packages
# (as root, or through sudo), a virtualenv in .venv and the Python packages from pyproject.toml.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test chaos bench lint install system-packages test-packages clean

demo: install
	$(BIN)/dispatch demo

test: install test-packages
	$(BIN)/pytest

# On demand: the full fault suite on both brokers (ITEMS=300 by default; SEED=… to replay a run).
ITEMS ?= 300
chaos: install test-packages
	$(BIN)/python -m tests.chaos --items $(ITEMS) --broker both $(if $(SEED),--seed $(SEED))

# On demand, each figure beside a baseline from the same run (QUICK=1: smaller runs of each): fan-out
# throughput against no-op tasks (the median of three runs, on the embedded broker and on a
# redis-server of its own), an import of a million subscribers, warning latency behind 20,000 routine
# deliveries, and one warning to a million subscribers.
bench: install
	@command -v redis-server >/dev/null || ./.ci/apt-install redis-server
	$(BIN)/python bench/fanout.py --broker embedded $(if $(QUICK),--items 20)
	$(BIN)/python bench/fanout.py --broker redis $(if $(QUICK),--items 20)
	$(BIN)/python bench/subscribers.py --rows $(if $(QUICK),100000,1000000)
	$(BIN)/python bench/backlog.py --broker embedded --backlog $(if $(QUICK),2000,20000)
	$(BIN)/python bench/backlog.py --broker redis --backlog $(if $(QUICK),2000,20000)
	$(BIN)/python bench/mass_sms.py --broker embedded --batch-size 1000 --subscribers $(if $(QUICK),100000,1000000)

lint: install
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,dev]'
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy settings.py worker.py dispatcher channels sandbox

install: system-packages $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# Debian packages: python3-venv for the virtualenv; for the tests, redis-server (a real broker) and
# kannel + kannel-extras (a real SMS gateway: bearerbox, smsbox and the fake SMSC), snmpd + snmp (a
# real SNMP agent for the NTCIP 1203 sign driver), chromium (the status page's browser tests, driven by
# Playwright; the browser Playwright would download is never used).
system-packages:
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || ./.ci/apt-install python3-venv

test-packages:
	@command -v redis-server >/dev/null || ./.ci/apt-install redis-server
	@test -x /usr/lib/kannel/test/fakesmsc || ./.ci/apt-install kannel kannel-extras
	@test -x /usr/sbin/snmpd || ./.ci/apt-install snmpd snmp
	@test -x /usr/bin/chromium || ./.ci/apt-install chromium

clean:
	rm -rf $(VENV) var .pytest_cache
