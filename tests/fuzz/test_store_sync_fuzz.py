"""Fuzz a real `cansync store serve` process: hostile bodies on every sync route and the public
ingest routes.

Every answer must be a 4xx JSON error envelope, or a success the input legitimately earns (checked
against an oracle computed here from the input); a refusal leaves the files under the root and the
index (change clock, digest set) exactly as they were; no 5xx, no dropped connection; the store keeps
serving. One store process for the whole module.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cansync.wire.pb import can_sync_pb2
from tests.helpers.store_process import StoreProcess, start_store_process

from .conftest import InputCounter
from .hostile_values import (
    BENIGN_WORD,
    HOSTILE_INT64,
    HOSTILE_SINCE,
    HOSTILE_TEXT,
    HOSTILE_UINT64,
    PATH_LIKE,
    hash_choices,
    sha256_hex,
)
from .proto_strategies import PROTO_TEXT, messages_of, mutated
from .store_ledger import SYNC_KEY, StoreLedger

pytestmark = pytest.mark.timeout(240)

SEED_CONTENTS = [b"fuzz seed: a live asset", b"fuzz seed: a trashed asset"]
SEED_HASHES = [sha256_hex(c) for c in SEED_CONTENTS]
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # cansync/store/delimited.py: larger length prefixes are refused
MAX_BATCH_ASSETS = 1024  # cansync/store/push_batch.py and proto/can_sync.proto: a batch's bounds
MAX_BATCH_BYTES = 64 * 1024 * 1024
MAX_HASHES_PAGE = 100_000  # cansync/store/sync_api.py: a larger limit is cut to this
INT64 = range(-(2**63), 2**63)

_BASE = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


def fuzz(max_examples: int) -> settings:
    return settings(_BASE, max_examples=max_examples)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreProcess]:
    process = start_store_process(tmp_path_factory.mktemp("fuzz") / "store", sync_key=SYNC_KEY)
    yield process
    assert process.stop() == 0, f"store did not stop cleanly:\n{process.log_text()[-3000:]}"


@pytest.fixture(scope="module")
def ledger(store: StoreProcess) -> Iterator[StoreLedger]:
    with httpx.Client(timeout=httpx.Timeout(20.0), trust_env=False) as client:
        for content in SEED_CONTENTS:
            response = client.post(f"{store.api}/ingest", files={"file": ("seed.txt", content)})
            assert response.status_code == 200, response.text
        response = client.post(f"{store.api}/asset/{SEED_HASHES[1]}/trash")
        assert response.status_code == 200, response.text
        yield StoreLedger(store.url, store.root, client)


def delimited(message_bytes: bytes) -> bytes:
    return struct.pack(">I", len(message_bytes)) + message_bytes


def server_view(body: bytes, cls: type) -> tuple[object | None, bytes]:
    """What the store reads from a length-prefixed body: the message (None if it cannot) and the rest."""
    if len(body) < 4:
        return None, b""
    (length,) = struct.unpack(">I", body[:4])
    if length > MAX_MESSAGE_BYTES or len(body) < 4 + length:
        return None, b""
    message = cls()
    try:
        message.ParseFromString(body[4 : 4 + length])
    except Exception:  # noqa: BLE001  (the oracle only needs "would the store parse it")
        return None, b""
    return message, body[4 + length :]


def parse_whole(body: bytes, cls: type) -> object | None:
    message = cls()
    try:
        message.ParseFromString(body)
    except Exception:  # noqa: BLE001
        return None
    return message


def is_hash(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def protobuf_bodies(cls: type, valid: st.SearchStrategy) -> st.SearchStrategy[bytes]:
    """Random bytes, valid encodings (hostile field values), and those encodings mutated."""
    encoded = valid.map(lambda m: m.SerializeToString())
    return st.one_of(st.binary(max_size=200), encoded, encoded.flatmap(mutated))


# --- POST /sync/hashes ------------------------------------------------------------------------------


@fuzz(300)
@given(body=protobuf_bodies(can_sync_pb2.HashesRequest, messages_of(can_sync_pb2.HashesRequest)))
def test_sync_hashes_bodies(ledger: StoreLedger, inputs: InputCounter, body: bytes) -> None:
    inputs.add()
    response = ledger.send("POST", "/sync/hashes", content=body, headers=ledger.headers())
    request = parse_whole(body, can_sync_pb2.HashesRequest)
    if request is None or request.limit < 0:
        ledger.assert_refused(response, f"/sync/hashes body {body[:60]!r}")
        return
    assert response.status_code == 200, response.text
    answer = can_sync_pb2.HashesResponse.FromString(response.content)
    assert {d.hash for d in answer.assets} <= ledger.held
    check_page(answer, request.since, request.limit, f"/sync/hashes body {body[:60]!r}")
    ledger.assert_unchanged("/sync/hashes")


def check_page(answer: can_sync_pb2.HashesResponse, since: int, limit: int, what: str) -> None:
    """A page holds at most `limit` digests after since in changed_seq order; a cut page's watermark
    is its last digest's changed_seq, a last page's is the clock, past every digest."""
    seqs = [d.changed_seq for d in answer.assets]
    assert seqs == sorted(seqs) and all(seq > since for seq in seqs), what
    if limit > 0:
        assert len(seqs) <= min(limit, MAX_HASHES_PAGE), what
    if answer.more:
        assert limit > 0 and len(seqs) == min(limit, MAX_HASHES_PAGE) and answer.watermark == seqs[-1], what
    else:
        assert all(seq <= answer.watermark for seq in seqs), what


@fuzz(200)
@given(limit=HOSTILE_SINCE, since=st.sampled_from([0, 1, 2, 3]))
def test_sync_hashes_limit_query(ledger: StoreLedger, inputs: InputCounter, limit: str, since: int) -> None:
    inputs.add()
    response = ledger.send("POST", "/sync/hashes", params={"since": since, "limit": limit}, headers=ledger.headers())
    what = f"/sync/hashes?since={since}&limit={limit[:80]!r}"
    try:
        valid = int(limit) >= 0
    except ValueError:
        valid = False
    if not valid:
        ledger.assert_refused(response, what)
        return
    assert response.status_code == 200, f"{what}: {response.text}"
    check_page(can_sync_pb2.HashesResponse.FromString(response.content), since, int(limit), what)
    ledger.assert_unchanged(what)


@fuzz(300)
@given(since=HOSTILE_SINCE)
def test_sync_hashes_since_query(ledger: StoreLedger, inputs: InputCounter, since: str) -> None:
    inputs.add()
    response = ledger.send("POST", "/sync/hashes", params={"since": since}, headers=ledger.headers())
    try:
        in_range = int(since) in INT64
    except ValueError:
        in_range = False
    if in_range and response.status_code == 200:
        can_sync_pb2.HashesResponse.FromString(response.content)
        ledger.assert_unchanged(f"/sync/hashes?since={since!r}")
    else:
        ledger.assert_refused(response, f"/sync/hashes?since={since[:80]!r}")


@fuzz(100)
@given(key=st.one_of(st.just(""), st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=20)))
def test_sync_routes_refuse_wrong_keys(ledger: StoreLedger, inputs: InputCounter, key: str) -> None:
    if key == SYNC_KEY:
        return
    for route in ("/sync/hashes", "/sync/pull", "/sync/push", "/sync/push_batch", "/sync/meta"):
        inputs.add()
        response = ledger.send("POST", route, content=b"", headers={"X-Sync-Key": key} if key else {})
        assert response.status_code in (401, 403), response.text
        ledger.assert_refused(response, f"{route} with key {key!r}")


# --- POST /sync/pull --------------------------------------------------------------------------------


def pull_requests() -> st.SearchStrategy[can_sync_pb2.PullRequest]:
    return st.builds(
        lambda hashes, offset: can_sync_pb2.PullRequest(hashes=hashes, offset=offset),
        st.lists(hash_choices(SEED_HASHES), max_size=4),
        HOSTILE_UINT64,
    )


def read_pull_stream(body: bytes) -> list[tuple[can_sync_pb2.PullItem, bytes]]:
    items, pos = [], 0
    while pos < len(body):
        (length,) = struct.unpack(">I", body[pos : pos + 4])
        item = can_sync_pb2.PullItem.FromString(body[pos + 4 : pos + 4 + length])
        pos += 4 + length
        size = item.meta.size - item.offset if item.found else 0
        items.append((item, body[pos : pos + size]))
        pos += size
    return items


@fuzz(400)
@given(body=protobuf_bodies(can_sync_pb2.PullRequest, pull_requests()))
def test_sync_pull(ledger: StoreLedger, inputs: InputCounter, body: bytes) -> None:
    inputs.add()
    response = ledger.send("POST", "/sync/pull", content=body, headers=ledger.headers())
    request = parse_whole(body, can_sync_pb2.PullRequest)
    if request is None or not all(is_hash(h) for h in request.hashes):
        ledger.assert_refused(response, f"/sync/pull body {body[:60]!r}")
        return
    assert response.status_code == 200, response.text
    items = read_pull_stream(response.content)
    assert [item.hash for item, _ in items] == list(request.hashes)
    for item, content in items:
        assert item.found == (item.hash in ledger.held)
        if item.found:
            assert item.offset == min(request.offset, item.meta.size)
            assert len(content) == item.meta.size - item.offset
            if item.offset == 0:
                assert sha256_hex(content) == item.hash
    ledger.assert_unchanged("/sync/pull")


# --- POST /sync/push --------------------------------------------------------------------------------

NAME_VALUES = st.one_of(BENIGN_WORD, HOSTILE_TEXT)
EXTENSIONS = st.one_of(st.sampled_from(["", "txt", "JSON", ".bin", "a" * 17, "tar.gz", "../x", "e/x"]), PROTO_TEXT)


@st.composite
def push_bodies(draw: st.DrawFn) -> bytes:
    content = draw(st.binary(max_size=300))
    claimed = draw(st.one_of(st.just(sha256_hex(content)), hash_choices(SEED_HASHES)))
    meta = can_sync_pb2.AssetMeta(
        hash=claimed,
        timestamp=draw(HOSTILE_INT64),
        size=draw(st.one_of(st.just(len(content)), st.just(0), HOSTILE_UINT64)),
        mime_type=draw(NAME_VALUES),
        tags=draw(st.lists(NAME_VALUES, max_size=4)),
        description=draw(NAME_VALUES),
        human_file_name=draw(NAME_VALUES),
        human_readable_path=draw(NAME_VALUES),
        application=draw(NAME_VALUES),
        user=draw(NAME_VALUES),
        trashed=draw(st.booleans()),
        meta_updated_ms=draw(HOSTILE_INT64),
        meta_origin=draw(NAME_VALUES),
        extension=draw(EXTENSIONS),
        changed_seq=draw(HOSTILE_INT64),
    )
    encoded = meta.SerializeToString()
    prefix = draw(
        st.sampled_from(["exact", "longer", "shorter", "huge"])  # a lying length prefix
    )
    length = {
        "exact": len(encoded),
        "longer": len(encoded) + draw(st.integers(1, 10_000)),
        "shorter": max(0, len(encoded) - draw(st.integers(1, 40))),
        "huge": draw(st.integers(MAX_MESSAGE_BYTES + 1, 2**32 - 1)),
    }[prefix]
    body = struct.pack(">I", length) + encoded + content
    if draw(st.booleans()):
        body = draw(mutated(body))
    return body


def push_verdict(body: bytes, held: set[str]) -> str:
    """'refuse' when the store must refuse this body; 'may_accept' when a success is legitimate."""
    meta, content = server_view(body, can_sync_pb2.AssetMeta)
    if meta is None or not is_hash(meta.hash):
        return "refuse"
    if meta.hash in held:
        return "may_accept"  # already held: the store drains the content and answers created=false
    if sha256_hex(content) != meta.hash or (meta.size and meta.size != len(content)):
        return "refuse"  # content not matching the claimed hash or size: nothing may be kept
    return "may_accept"


@fuzz(700)
@given(body=st.one_of(push_bodies(), st.binary(max_size=120)))
def test_sync_push(ledger: StoreLedger, inputs: InputCounter, body: bytes) -> None:
    inputs.add()
    verdict = push_verdict(body, ledger.held)
    response = ledger.send("POST", "/sync/push", content=body, headers=ledger.headers())
    if verdict == "refuse" or response.status_code != 200:
        ledger.assert_refused(response, f"/sync/push ({verdict}) body {body[:80]!r}")
        return
    meta, content = server_view(body, can_sync_pb2.AssetMeta)
    result = can_sync_pb2.PushResult.FromString(response.content)
    assert result.hash == meta.hash
    if not result.created:
        assert meta.hash in ledger.held
        ledger.assert_unchanged("/sync/push of a held asset")
        return
    assert sha256_hex(content) == meta.hash
    assert result.meta.size == len(content)
    # the sender's timestamp is kept verbatim when it is a real time; otherwise the store stamps it
    assert result.meta.timestamp == meta.timestamp if meta.timestamp > 0 else result.meta.timestamp > 0
    assert not any(p in result.meta.human_file_name for p in ("/", "\\")) and result.meta.human_file_name != ".."
    ledger.account_write("/sync/push", meta.hash)


# --- POST /sync/push_batch --------------------------------------------------------------------------


@st.composite
def batch_metas(draw: st.DrawFn, content: bytes) -> can_sync_pb2.AssetMeta:
    """Mostly honest (sizes that frame the batch right, plain words), so that batches get judged asset
    by asset; now and then a lying size or hash and hostile values."""
    hostile = draw(st.integers(0, 3)) == 0
    values = NAME_VALUES if hostile else BENIGN_WORD
    lying_size = draw(st.integers(0, 9)) == 0
    return can_sync_pb2.AssetMeta(
        hash=draw(st.one_of(st.just(sha256_hex(content)), hash_choices(SEED_HASHES))),
        timestamp=draw(HOSTILE_INT64),
        size=draw(st.one_of(st.integers(0, 400), HOSTILE_UINT64)) if lying_size else len(content),
        mime_type=draw(values),
        tags=draw(st.lists(values, max_size=3)),
        description=draw(values),
        human_file_name=draw(values),
        trashed=draw(st.booleans()),
        meta_updated_ms=draw(HOSTILE_INT64),
        meta_origin=draw(values),
        extension=draw(EXTENSIONS if hostile else st.sampled_from(["", "txt", "bin"])),
    )


@st.composite
def push_batch_bodies(draw: st.DrawFn) -> bytes:
    """Sequences of (delimited AssetMeta, content): honest, with lying sizes or hashes, repeated
    assets, hostile field values; sometimes mutated as a whole."""
    parts: list[bytes] = []
    for _ in range(draw(st.integers(0, 6))):
        if parts and draw(st.integers(0, 5)) == 0:
            parts.append(draw(st.sampled_from(parts)))  # the same asset again in one batch
            continue
        content = draw(st.binary(max_size=200))
        parts.append(delimited(draw(batch_metas(content)).SerializeToString()) + content)
    body = b"".join(parts)
    if draw(st.integers(0, 3)) == 0:
        body = draw(mutated(body))
    return body


def batch_view(body: bytes) -> list[tuple[can_sync_pb2.AssetMeta, bytes]] | None:
    """The assets the store reads from a batch body, or None when it must refuse the batch whole."""
    items: list[tuple[can_sync_pb2.AssetMeta, bytes]] = []
    position, content_bytes = 0, 0
    while position < len(body):
        meta, _ = server_view(body[position:], can_sync_pb2.AssetMeta)
        if meta is None:
            return None
        position += 4 + struct.unpack(">I", body[position : position + 4])[0]
        content_bytes += meta.size
        if len(items) >= MAX_BATCH_ASSETS or content_bytes > MAX_BATCH_BYTES or position + meta.size > len(body):
            return None
        items.append((meta, body[position : position + meta.size]))
        position += meta.size
    return items


@fuzz(500)
@given(body=st.one_of(push_batch_bodies(), st.binary(max_size=120)))
def test_sync_push_batch(ledger: StoreLedger, inputs: InputCounter, body: bytes) -> None:
    inputs.add()
    items = batch_view(body)
    response = ledger.send("POST", "/sync/push_batch", content=body, headers=ledger.headers())
    what = f"/sync/push_batch body {body[:120]!r}"
    if items is None:
        ledger.assert_refused(response, what)
        return
    assert response.status_code == 200, f"{what}: {response.text}"
    results = can_sync_pb2.PushBatchResult.FromString(response.content).results
    assert len(results) == len(items), what
    held, created = ledger.held, set()
    for (meta, content), result in zip(items, results, strict=True):
        assert result.hash == meta.hash, what
        stored_before = meta.hash in held or meta.hash in created
        if result.outcome == can_sync_pb2.PUSH_CREATED:
            assert not stored_before and sha256_hex(content) == meta.hash, f"{what}: created {meta.hash}"
            assert result.meta.size == len(content) and result.meta.hash == meta.hash, what
            created.add(meta.hash)
        elif result.outcome == can_sync_pb2.PUSH_ALREADY_HELD:
            assert stored_before and result.meta.hash == meta.hash, f"{what}: held {meta.hash}"
        else:
            assert result.outcome == can_sync_pb2.PUSH_REFUSED and result.reason, f"{what}: {result}"
            assert not result.HasField("meta"), what
            # a hash that is no hash, or a content not matching a hash the store lacks, is refused
        if not is_hash(meta.hash) or (not stored_before and sha256_hex(content) != meta.hash):
            assert result.outcome == can_sync_pb2.PUSH_REFUSED, f"{what}: {meta.hash} not refused"
    if created:
        ledger.account_writes("/sync/push_batch", created)
    else:
        ledger.assert_unchanged(f"{what}: nothing created")


# --- POST /sync/meta --------------------------------------------------------------------------------


def meta_updates() -> st.SearchStrategy[can_sync_pb2.MetaUpdate]:
    return st.builds(
        lambda h, tags, description, trashed, updated_ms, origin: can_sync_pb2.MetaUpdate(
            hash=h, tags=tags, description=description, trashed=trashed, updated_ms=updated_ms, origin=origin
        ),
        hash_choices(SEED_HASHES),
        st.lists(NAME_VALUES, max_size=4),
        NAME_VALUES,
        st.booleans(),
        st.one_of(st.integers(1, 10**13), HOSTILE_INT64),
        NAME_VALUES,
    )


@fuzz(500)
@given(body=protobuf_bodies(can_sync_pb2.MetaUpdate, meta_updates()))
def test_sync_meta(ledger: StoreLedger, inputs: InputCounter, body: bytes) -> None:
    inputs.add()
    response = ledger.send("POST", "/sync/meta", content=body, headers=ledger.headers())
    update = parse_whole(body, can_sync_pb2.MetaUpdate)
    if update is None or update.hash not in ledger.held or response.status_code != 200:
        ledger.assert_refused(response, f"/sync/meta body {body[:80]!r}")
        return
    result = can_sync_pb2.MetaResult.FromString(response.content)
    assert result.meta.hash == update.hash
    if not result.applied:
        ledger.assert_unchanged("/sync/meta not applied")
        return
    assert (result.meta.meta_updated_ms, result.meta.meta_origin) == (update.updated_ms, update.origin)
    assert result.meta.trashed == update.trashed
    assert not any("/" in t or "\\" in t or t.startswith("..") for t in result.meta.tags)
    ledger.account_write("/sync/meta", update.hash)


# --- GET /sync/events and the public /events ---------------------------------------------------------


def read_until_stream_open(response: httpx.Response) -> bytes:
    """SSE bytes up to the first keep-alive comment (sent once the backlog is out)."""
    seen = b""
    for chunk in response.iter_bytes():
        seen += chunk
        if b": keep-alive" in seen:
            return seen
    raise AssertionError(f"event stream ended before it opened: {seen[-200:]!r}")


@fuzz(150)
@given(since=HOSTILE_SINCE, route=st.sampled_from(["/sync/events", "/api/v1/can/0/events"]))
def test_events_since(ledger: StoreLedger, inputs: InputCounter, since: str, route: str) -> None:
    inputs.add()
    try:
        valid = int(since) in range(0, 2**63)
    except ValueError:
        valid = since == ""  # no since at all: live only
    with ledger.stream("GET", route, params={"since": since}, headers={"X-Sync-Key": SYNC_KEY}) as response:
        if valid and response.status_code == 200:
            assert response.headers["content-type"].startswith("text/event-stream")
            read_until_stream_open(response)
            return
        response.read()
        ledger.assert_refused(response, f"GET {route}?since={since[:80]!r}")


# --- POST /api/v1/can/0/ingest (multipart) -----------------------------------------------------------

TEXT_FIELDS = ["tags", "application", "user", "description", "mime_type", "human_file_name", "human_readable_path"]


@st.composite
def multipart_bodies(draw: st.DrawFn) -> tuple[bytes, dict[str, str], str]:
    """(body, headers, expectation): 'accept' for an intact body of benign values, 'refuse' for an
    intact body with a path-like file name, 'any' otherwise (mutated or other hostile values)."""
    hostile = draw(st.booleans())
    values = NAME_VALUES if hostile else BENIGN_WORD
    boundary = draw(
        st.one_of(st.just("fuzzboundary7MA4YWxk"), st.text("abcXYZ019-'()+_,./:=?", min_size=1, max_size=70))
    )
    file_name = draw(st.one_of(st.sampled_from(PATH_LIKE), values)) if hostile else draw(BENIGN_WORD) + ".txt"
    content = draw(st.binary(max_size=300))
    parts = [
        (name, draw(values))
        for name in draw(st.lists(st.sampled_from(TEXT_FIELDS + ["other"]), unique=True, max_size=4))
    ]
    if not hostile:
        parts = [(n, v) for n, v in parts if n not in ("mime_type",)]
    file_first = draw(st.booleans())
    chunks: list[bytes] = []

    def part(name: str, data: bytes, filename: str | None = None) -> bytes:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        return (
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode("utf-8", "surrogatepass")
            + data
            + b"\r\n"
        )

    file_part = part("file", content, file_name)
    if file_first:
        chunks.append(file_part)
    chunks += [part(name, value.encode("utf-8", "surrogatepass")) for name, value in parts]
    if not file_first:
        chunks.append(file_part)
    body = b"".join(chunks) + f"--{boundary}--\r\n".encode()
    content_type = draw(
        st.sampled_from(
            [f"multipart/form-data; boundary={boundary}"] * 4
            + ["multipart/form-data", "multipart/form-data; boundary=other", "application/json", "text/plain", ""]
        )
    )
    expectation = "accept" if not hostile else "any"
    # the store names the asset by human_file_name when given, else by the upload's filename; a
    # backslash inside the quoted filename is an escape (a\\b arrives as ab), so only names without
    human_file_name = dict(parts).get("human_file_name", "")
    upload_name_used = not human_file_name and not any(c in file_name for c in '"\\')
    if hostile and (human_file_name in PATH_LIKE or (upload_name_used and file_name in PATH_LIKE)):
        expectation = "refuse"
    if not content_type.endswith(f"boundary={boundary}"):
        expectation = "refuse"
    if draw(st.booleans()):
        body = draw(mutated(body))
        # a mutated body may still be a valid upload; without a multipart content type it never is
        expectation = "any" if content_type.startswith("multipart/") else "refuse"
    headers = {"Content-Type": content_type} if content_type else {}
    return body, headers, expectation


@fuzz(600)
@given(case=multipart_bodies())
def test_ingest_multipart(ledger: StoreLedger, inputs: InputCounter, case: tuple[bytes, dict[str, str], str]) -> None:
    body, headers, expectation = case
    inputs.add()
    response = ledger.send("POST", "/api/v1/can/0/ingest", content=body, headers=headers)
    what = f"ingest ({expectation}) {headers} body {body[:120]!r}"
    if expectation == "refuse" or (expectation == "any" and response.status_code != 200):
        ledger.assert_refused(response, what)
        return
    assert response.status_code == 200, f"{what}: {response.text}"
    record = response.json()["data"]
    assert not any(c in record["human_file_name"] for c in "/\\"), record
    if record["hash"] in ledger.held:
        ledger.assert_unchanged(what)
    else:
        ledger.account_write(what, record["hash"])


# --- POST /api/v1/can/0/ingest/data (JSON) -----------------------------------------------------------

JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=10,
)
ODD_JSON_FIELD = st.one_of(JSON_VALUES, NAME_VALUES, st.sampled_from(PATH_LIKE))


@st.composite
def ingest_data_documents(draw: st.DrawFn) -> dict[str, object]:
    doc: dict[str, object] = {"data": draw(JSON_VALUES)}
    for name in draw(st.lists(st.sampled_from(TEXT_FIELDS + ["extension"]), unique=True, max_size=3)):
        doc[name] = draw(ODD_JSON_FIELD)
    return doc


def ingest_data_verdict(body: bytes) -> tuple[str, bytes]:
    """('refuse', b'') or ('may_accept', the content the store must keep)."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return "refuse", b""
    if not isinstance(doc, dict) or "data" not in doc:
        return "refuse", b""
    try:
        return "may_accept", json.dumps(doc["data"], ensure_ascii=False, separators=(",", ":")).encode()
    except (UnicodeEncodeError, RecursionError, ValueError):
        return "refuse", b""


def send_ingest_data(ledger: StoreLedger, body: bytes) -> None:
    verdict, content = ingest_data_verdict(body)
    response = ledger.send(
        "POST", "/api/v1/can/0/ingest/data", content=body, headers={"Content-Type": "application/json"}
    )
    what = f"ingest/data ({verdict}) body {body[:160]!r}"
    if verdict == "refuse" or response.status_code != 200:
        ledger.assert_refused(response, what)
        return
    record = response.json()["data"]
    assert record["hash"] == sha256_hex(content), f"{what}: stored something other than the JSON data"
    if record["hash"] in ledger.held:
        ledger.assert_unchanged(what)
    else:
        ledger.account_write(what, record["hash"])


@fuzz(300)
@given(
    body=st.one_of(
        st.binary(max_size=200), ingest_data_documents().map(lambda d: json.dumps(d).encode()).flatmap(mutated)
    )
)
def test_ingest_data_garbled_bodies(ledger: StoreLedger, inputs: InputCounter, body: bytes) -> None:
    inputs.add()
    send_ingest_data(ledger, body)


@fuzz(300)
@given(doc=ingest_data_documents())
def test_ingest_data_hostile_field_values(ledger: StoreLedger, inputs: InputCounter, doc: dict[str, object]) -> None:
    inputs.add()
    send_ingest_data(ledger, json.dumps(doc).encode())


@fuzz(60)
@given(depth=st.integers(500, 200_000), opener=st.sampled_from(["[", '{"a":']))
def test_ingest_data_deeply_nested_json(ledger: StoreLedger, inputs: InputCounter, depth: int, opener: str) -> None:
    inputs.add()
    closer = "]" if opener == "[" else "}"
    send_ingest_data(ledger, ('{"data":' + opener * depth + "1" + closer * depth + "}").encode())


@fuzz(60)
@given(text=st.text(max_size=10), surrogate=st.integers(0xD800, 0xDFFF))
def test_ingest_data_lone_surrogate_escapes(
    ledger: StoreLedger, inputs: InputCounter, text: str, surrogate: int
) -> None:
    # JSON allows \udXXX escapes that decode to a lone surrogate, which is not encodable as UTF-8
    inputs.add()
    send_ingest_data(ledger, ('{"data": ' + json.dumps(text)[:-1] + f'\\u{surrogate:04x}"' + "}").encode())


# --- unknown can_id ------------------------------------------------------------------------------------


@fuzz(200)
@given(
    can_id=st.one_of(
        st.sampled_from(["1", "00", "-0", "+0", " 0", "0 ", "%30", "..", ".", "0/..", "../0"]),
        st.text(min_size=1, max_size=12),
    ),
    route=st.sampled_from(["ingest", "ingest/data", "list", "events", f"asset/{SEED_HASHES[0]}"]),
)
def test_unknown_can_id_is_refused(ledger: StoreLedger, inputs: InputCounter, can_id: str, route: str) -> None:
    if can_id == "0":
        return
    inputs.add()
    method = "POST" if route.startswith("ingest") else "GET"
    path = f"/api/v1/can/{quote(can_id, safe='')}/{route}"
    response = ledger.send(method, path, content=b'{"data": 1}', headers={"Content-Type": "application/json"})
    ledger.assert_refused(response, f"{method} {path}")


# --- at the end: still serving, and holding exactly what was accounted for ---------------------------


def test_store_still_serves_and_holds_only_accounted_assets(ledger: StoreLedger, store: StoreProcess) -> None:
    assert store.is_running()
    content = b"a normal ingest after the fuzzing"
    response = ledger.send("POST", "/api/v1/can/0/ingest", files={"file": ("after.txt", content)})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["hash"] == sha256_hex(content)
    assert ledger.send("GET", f"/api/v1/can/0/asset/{sha256_hex(content)}").content == content
    ledger.check_whole_store()
    assert set(SEED_HASHES) <= ledger.held
    assert ledger.disk.siblings == {store.root.name, f"{store.root.name}.log"}, ledger.disk.siblings
    print(
        f"\nstore fuzz: {ledger.requests_sent} requests, {ledger.accepted_writes} accounted writes, "
        f"{len(ledger.held)} assets held"
    )


# --- the exact inputs the fuzzing above found answered with a 5xx or a broken stream -------------------

FOUND_BY_FUZZING = {
    "hashes-since-past-int64": ("POST", "/sync/hashes?since=9223372036854775808", b"", "application/x-protobuf"),
    "sync-events-since-past-int64": ("GET", "/sync/events?since=9223372036854775808", b"", ""),
    "public-events-since-past-int64": ("GET", "/api/v1/can/0/events?since=9223372036854775808", b"", ""),
    "ingest-data-tags-not-a-list": (
        "POST",
        "/api/v1/can/0/ingest/data",
        b'{"data": null, "tags": false}',
        "application/json",
    ),
    "ingest-data-nested-1000-deep": (
        "POST",
        "/api/v1/can/0/ingest/data",
        b'{"data":' + b"[" * 1000 + b"]" * 1000 + b"}",
        "application/json",
    ),
    "ingest-data-lone-surrogate": ("POST", "/api/v1/can/0/ingest/data", b'{"data": "\\ud800"}', "application/json"),
    "ingest-bad-part-header": ("POST", "/api/v1/can/0/ingest", b"--0\r\nC", "multipart/form-data; boundary=0"),
}


@pytest.mark.parametrize("case", sorted(FOUND_BY_FUZZING))
def test_inputs_found_by_fuzzing_are_refused_with_a_4xx(ledger: StoreLedger, case: str) -> None:
    method, path, body, content_type = FOUND_BY_FUZZING[case]
    headers = {"X-Sync-Key": SYNC_KEY, **({"Content-Type": content_type} if content_type else {})}
    with ledger.stream(method, path, content=body, headers=headers) as response:
        response.read()
    ledger.assert_refused(response, f"{case}: {method} {path} body {body[:60]!r}")
