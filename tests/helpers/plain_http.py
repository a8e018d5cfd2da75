"""The tests' own HTTP requests (a user's ingest, an auditor's listing, a poll of /list), made as httpx.get()
and friends make them (a new client and connection per request, the same defaults), but with one TLS context
built once: httpx builds a new one per call and reads the whole CA bundle for it (~23 ms of CPU), even for the
plain-http loopback URLs the tests use. A wait_until() that polls a store every 50 ms spent most of a core on
it, taken from the agents under test on a 2-core machine.
"""

from __future__ import annotations

from typing import Any

import httpx

TLS = httpx.create_ssl_context()


def request(method: str, url: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, url, verify=TLS, **kwargs)


def get(url: str, **kwargs: Any) -> httpx.Response:
    return request("GET", url, **kwargs)


def post(url: str, **kwargs: Any) -> httpx.Response:
    return request("POST", url, **kwargs)


def patch(url: str, **kwargs: Any) -> httpx.Response:
    return request("PATCH", url, **kwargs)
