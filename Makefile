# The two commands of the README:
#   make demo   run the two-app SSO demo on a bundled local provider
#   make test   set everything up and run ruff, mypy and the whole test suite
# Both create .venv and install the Python dependencies on first use; the
# bundled provider's npm dependencies are installed by the test fixture.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test lint demo clean

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

lint: $(BIN)/.installed
	$(BIN)/ruff check sso_middleware tests examples demo_app.py
	$(BIN)/mypy

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

demo: $(BIN)/.installed
	$(BIN)/python demo_app.py

clean:
	rm -rf $(VENV) build *.egg-info
