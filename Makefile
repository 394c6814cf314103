# The two set-up commands of the README: `make app` (the desktop app) and `make test`.
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: install app test bench
install: $(STAMP)

$(STAMP): pyproject.toml scripts/install.sh
	bash scripts/install.sh
	touch $@

app: $(STAMP)
	$(VENV)/bin/xfavot-studio

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/bench_inference.py
