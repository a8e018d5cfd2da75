"""Fixtures for discovery tests: the npm pkarr relay (shared, tests/conftest.py) and the npm client."""

from __future__ import annotations

import json
import subprocess

from tests.helpers.npm_relay import HARNESS_DIR, JS_CLIENT, NpmRelay, _require_node

__all__ = ["NpmRelay", "run_js_client"]


def run_js_client(*args: str) -> dict[str, object]:
    """Run js-client.mjs (the npm pkarr client) and return its JSON answer; fail with its stderr otherwise."""
    node = _require_node()
    done = subprocess.run([node, str(JS_CLIENT), *args], cwd=HARNESS_DIR, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise AssertionError(f"js-client {args[0]} failed ({done.returncode}): {done.stderr.strip()}")
    result: dict[str, object] = json.loads(done.stdout)
    return result
