# Two set-up commands: `make demo` and `make test`. Both create .venv on first
# use (Python 3.11 + pip only), install the pinned CPU stack and mmgdkd, and
# are no-ops for the install step when .venv is up to date.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmgdkd-installed
PYTEST_ARGS ?=

.PHONY: install demo test sanitize clean-venv

install: $(STAMP)

# The editable install also builds the native loss kernel: rebuild when its
# source changes.
$(STAMP): requirements/cpu-pinned.txt requirements/runtime.txt setup.py \
		$(wildcard mmgdkd/models/losses/csrc/*)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/cpu-pinned.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

demo: $(STAMP)
	$(PY) tools/demo.py

test: $(STAMP)
	$(PY) -m pytest tests $(PYTEST_ARGS)

# The native loss kernel under AddressSanitizer + UBSan, with its tests (not
# in CI; see tools/sanitize_kernel.sh).
sanitize: $(STAMP)
	PY=$(PY) tools/sanitize_kernel.sh

clean-venv:
	rm -rf $(VENV)
