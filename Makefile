# Two commands on a fresh machine: `make run` (seeds the demo study if absent, then serves the app on the
# embedded default: SQLite, demo model) and `make test`; for contributors, `make test-fast`.
# Both create .venv and install requirements.txt when it changed; `make test` also installs the
# system packages the tests need (R with lme4 as the mixed-model reference) when it can.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
PORT ?= 8501

.PHONY: run test test-fast system-deps bench

# an existing .venv is kept as it is (also a symlink to a shared one, which `python3 -m venv` refuses)
$(STAMP): requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

# Study mode (study/domain/study_mode.py): by default ("auto") the public demo pages, which run the model for any
# visitor, are hidden while a study has readers with unaided readings left, and the demo study's demo
# readers always have some. `make run` is the local demo, not a live study, so it says explicitly that the
# demo pages stay visible (the environment beats [app] public_demo in secrets.toml). To see study mode:
# `make run PUBLIC_DEMO=auto`. A real study's server: leave REVISION_PUBLIC_DEMO unset ("auto") or "off".
PUBLIC_DEMO ?= on

run: $(STAMP)
	$(PY) -m study demo
	REVISION_PUBLIC_DEMO=$(PUBLIC_DEMO) $(PY) scripts/serve_app.py --server.headless true --server.port $(PORT) --browser.gatherUsageStats false --server.fileWatcherType none

system-deps:
	bash scripts/install_system_deps.sh

# The tests run in random order (pytest-randomly prints its seed; `--randomly-seed=N` repeats an order,
# `-p no:randomly` runs in file order) on parallel workers (pytest-xdist; a module's tests stay on one worker;
# `make test PYTEST_ARGS=` runs in one process). Tiers by marker (pyproject.toml): `make test` runs every test
# but the `slow` ones (those run with `python -m pytest -m slow`), like `pytest` alone; `make test-fast` only
# the quick unit and service tests: no `browser`, `postgresql` or `r` (so no system packages), no `heavy`.
PYTEST_ARGS ?= -n auto --dist loadscope
FAST := not browser and not postgresql and not r and not slow and not heavy

test: $(STAMP) system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS) -m "$(FAST)"

bench: $(STAMP)
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done
