#!/usr/bin/env bash
# The whole test suite on a fresh machine: install everything the tests need (Python packages into
# .venv, a wheelhouse in .wheelhouse, Debian's chromium, the npm pkarr relay), then run pytest inside a
# loopback-only network namespace.
# Extra arguments go to pytest (e.g. `bash tests/run.sh tests/core -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
# wheels of cansync's build and runtime requirements, for the test that installs cansync into a fresh venv:
# inside the namespace pip reaches no index (refilled only when pyproject.toml or the interpreter changes)
.venv/bin/python -m tests.helpers.wheelhouse
# Debian's chromium, for the dashboard tests in a real headless browser (never a browser download)
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
fi
if [ -f tests/pkarr_relay/package-lock.json ]; then
  npm ci --prefix tests/pkarr_relay --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null
fi
exec bash tests/isolate.sh .venv/bin/python -m pytest "$@"
