"""A first meeting settles the two stores' difference by reconciliation, not by exchanging every digest;
a later meeting asks only for what changed since."""

from __future__ import annotations

import json

from tests.e2e.conftest import SYNC_KEY, Cluster
from tests.helpers.assets import ingest, make_bytes, store_digests
from tests.helpers.journal_db import journal_rows
from tests.helpers.store_process import wait_until

KiB = 1024


def test_two_stores_that_share_most_assets_exchange_only_their_difference(cluster: Cluster):
    a, b = cluster.add("a"), cluster.add("b")
    shared = [make_bytes(5000 + n, 2 * KiB) for n in range(150)]
    for node in (a, b):
        for n, content in enumerate(shared):
            ingest(node.api, content, f"shared{n}.bin")
    only_a = {ingest(a.api, make_bytes(6000 + n, 3 * KiB), f"a{n}.bin") for n in range(7)}
    only_b = {ingest(b.api, make_bytes(7000 + n, 3 * KiB), f"b{n}.bin") for n in range(5)}
    union = set(store_digests(a.store.url, SYNC_KEY)) | set(store_digests(b.store.url, SYNC_KEY))
    assert len(union) == 150 + 7 + 5
    b.start_agent()
    a.start_agent(connect_ticket_file=b.home / "ticket.json")
    for node in (a, b):
        assert wait_until(lambda n=node: set(store_digests(n.store.url, SYNC_KEY)) == union, timeout=60)
    for node, lacks, extra in ((a, only_a, only_b), (b, only_b, only_a)):
        (data,) = journal_rows(node.home, "SELECT data FROM events WHERE kind='peer_reconciled'")
        found = json.loads(data[0])
        assert set(found["lacks"]) == lacks and set(found["extra"]) == extra
        # no digest list of the 150 shared assets crossed: only the difference was named
        named = journal_rows(node.home, "SELECT data FROM events WHERE kind='hashes_advertised'")
        assert sum(len(json.loads(d)["hashes"]) for (d,) in named) <= 12
    # a later meeting does not reconcile again: it asks for what changed since the watermark
    assert a.agent is not None and b.agent is not None
    a.agent.stop()
    later = ingest(b.api, make_bytes(8000, 3 * KiB), "later.bin")
    a.start_agent(connect_ticket_file=b.home / "ticket.json")
    assert wait_until(lambda: later in store_digests(a.store.url, SYNC_KEY), timeout=30)
    assert len(journal_rows(a.home, "SELECT 1 FROM events WHERE kind='peer_reconciled'")) == 1
