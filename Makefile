# The two commands of the README:
#   make demo   run the three-app demo (a SPA and two wrapped WSGI apps) on a bundled local provider
#   make test   set everything up and run ruff, mypy and the whole test suite
# Both create .venv and install the Python dependencies on first use; the npm dependencies
# (the bundled provider's, the demo SPA's) are installed from their lock files on first start.  `make test`
# first installs the Debian packages the tests need (tools/system-packages.sh: as root
# with apt-get; any other user is told the one command to run, and pytest does not start).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test lint demo clean system-packages

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

lint: $(BIN)/.installed
	$(BIN)/ruff check sso_middleware tests examples demo_app.py demo
	$(BIN)/mypy

system-packages:
	sh tools/system-packages.sh

test: system-packages lint
	$(BIN)/pytest $(PYTEST_ARGS)

demo: $(BIN)/.installed
	$(BIN)/python demo_app.py

clean:
	rm -rf $(VENV) build *.egg-info

# The benchmarks (bench/run.py, about four minutes): install what they need (Debian packages
# when root, the bench extra), run every server on loopback, print the tables and write
# docs/performance.md.  BENCH_ARGS=--quick for a short smoke run; --help for the options.
.PHONY: bench

$(BIN)/.bench-installed: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@

bench: $(BIN)/.bench-installed
	$(BIN)/python -m bench.run $(BENCH_ARGS)
