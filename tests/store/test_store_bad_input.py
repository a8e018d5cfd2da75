"""Bad input gets a clear 4xx, stores nothing, and the store keeps serving."""

from __future__ import annotations

import hashlib
import socket
import struct
from collections.abc import Iterator

import httpx
import pytest
from store_files import asset_files, leftover_temp_files
from test_store_sync_api import push_body

from cansync.wire.pb import can_sync_pb2
from tests.helpers.store_process import StoreProcess, start_store_process, wait_until

STILL_SERVING = b"still serving"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreProcess]:
    """One store for this whole file (each test checks that it added nothing to it)."""
    process = start_store_process(tmp_path_factory.mktemp("bad-input") / "store")
    yield process
    assert process.stop() == 0


def stored_files(store: StoreProcess) -> set[str]:
    """Asset files other than the one assert_still_serving adds, plus any temp file left behind."""
    marker = hashlib.sha256(STILL_SERVING).hexdigest()
    files = {p.name for p in asset_files(store.root) if marker not in p.name}
    return files | {p.name for p in leftover_temp_files(store.root)}


NOT_PROTOBUF = b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"  # an over-long varint tag


async def assert_still_serving(store: StoreProcess, http: httpx.AsyncClient) -> None:
    response = await http.post(f"{store.api}/ingest", files={"file": ("ok.txt", STILL_SERVING)})
    assert response.status_code == 200
    assert (await http.get(f"{store.api}/asset/{response.json()['data']['hash']}")).content == STILL_SERVING


def assert_error(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error"
    assert words in body["error"], body["error"]


@pytest.mark.parametrize("route", ["/sync/hashes", "/sync/pull", "/sync/meta"])
async def test_malformed_protobuf_is_refused(store, http, sync_headers, route) -> None:
    before = stored_files(store)
    response = await http.post(f"{store.url}{route}", content=NOT_PROTOBUF, headers=sync_headers)
    assert_error(response, 400, "not a valid")
    assert stored_files(store) == before
    await assert_still_serving(store, http)


async def test_malformed_push_bodies_are_refused(store, http, sync_headers) -> None:
    before = stored_files(store)
    content = b"abc"
    good_meta = can_sync_pb2.AssetMeta(hash=hashlib.sha256(content).hexdigest(), size=3)
    cases = {
        "short prefix": b"\x00\x00",
        "length past the end": struct.pack(">I", 500) + b"xx",
        "huge length": struct.pack(">I", 2**31) + b"xx",
        "not a message": struct.pack(">I", len(NOT_PROTOBUF)) + NOT_PROTOBUF + content,
        "bad hash": push_body(can_sync_pb2.AssetMeta(hash="../../etc/passwd", size=3), content),
        "upper-case hash": push_body(can_sync_pb2.AssetMeta(hash=good_meta.hash.upper(), size=3), content),
    }
    for name, body in cases.items():
        response = await http.post(f"{store.url}/sync/push", content=body, headers=sync_headers)
        assert response.status_code == 400, f"{name}: {response.text}"
        assert response.json()["status"] == "error", name
    assert stored_files(store) == before
    await assert_still_serving(store, http)


async def test_truncated_multipart_is_refused_and_nothing_stored(store, http) -> None:
    before = stored_files(store)
    boundary = "cansyncboundary"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="cut.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + b"x" * 300_000  # no closing boundary: the body ends inside the file part
    response = await http.post(
        f"{store.api}/ingest", content=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert_error(response, 400, "cut off")
    assert stored_files(store) == before
    await assert_still_serving(store, http)


async def test_connection_dropped_mid_upload_leaves_nothing(store, http) -> None:
    before = stored_files(store)
    boundary = "dropboundary"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="drop.bin"\r\n\r\n').encode()
    request = (
        f"POST /api/v1/can/0/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 10000000\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", store.port)) as sock:
        sock.sendall(request + head + b"y" * 2_000_000)
    await assert_still_serving(store, http)
    assert wait_until(lambda: leftover_temp_files(store.root) == [], timeout=10)  # the drop is seen
    assert stored_files(store) == before


async def test_not_multipart_and_missing_file_are_refused(store, http) -> None:
    before = stored_files(store)
    assert_error(await http.post(f"{store.api}/ingest", content=b"raw"), 400, "multipart")
    assert_error(
        await http.post(f"{store.api}/ingest", data={"tags": "a"}, files={"other": ("x", b"x")}),
        400,
        "`file` is required",
    )
    assert_error(await http.post(f"{store.api}/ingest/data", content=b"{not json"), 400, "JSON")
    assert_error(await http.post(f"{store.api}/ingest/data", json={"tags": "a"}), 400, '"data"')
    assert_error(await http.get(f"{store.api}/asset/not-a-hash"), 400, "not an asset hash")
    assert stored_files(store) == before


@pytest.mark.parametrize(
    ("fields", "filename", "words"),
    [
        ({"tags": "../../etc/passwd"}, "ok.txt", "looks like a path"),
        ({"tags": "good,a/b"}, "ok.txt", "looks like a path"),
        ({"tags": "nul\x01tag"}, "ok.txt", "control"),
        ({"human_file_name": "../../etc/passwd"}, "ok.txt", "looks like a path"),
        ({"human_file_name": "..\\..\\windows\\system32"}, "ok.txt", "looks like a path"),
        ({}, "../../etc/passwd", "looks like a path"),
    ],
)
async def test_path_like_names_and_tags_are_refused(store, http, fields, filename, words) -> None:
    before = stored_files(store)
    response = await http.post(f"{store.api}/ingest", files={"file": (filename, b"evil")}, data=fields)
    assert_error(response, 400, words)
    assert stored_files(store) == before
    assert not any(p.name == "passwd" for p in store.root.parent.rglob("passwd"))
    await assert_still_serving(store, http)


async def test_a_file_name_in_bytes_that_are_not_utf8_is_refused_not_a_server_error(store, http) -> None:
    # the fuzzer's case: the name's header holds the byte 0xF4, which no UTF-8 text contains
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="ea.'.encode()
        + b'\xf4xt"\r\n\r\nsome content\r\n'
        + f"--{boundary}--\r\n".encode()
    )
    before = stored_files(store)
    response = await http.post(
        f"{store.api}/ingest", content=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert_error(response, 400, "not valid UTF-8")
    assert stored_files(store) == before
    await assert_still_serving(store, http)


async def test_path_like_metadata_in_push_and_meta_is_refused(store, http, sync_headers) -> None:
    before = stored_files(store)
    content = b"peer asset for the path-like metadata test"
    digest = hashlib.sha256(content).hexdigest()
    for meta in (
        can_sync_pb2.AssetMeta(hash=digest, size=len(content), tags=["../../etc/passwd"]),
        can_sync_pb2.AssetMeta(hash=digest, size=len(content), human_file_name="../x"),
        can_sync_pb2.AssetMeta(hash=digest, size=len(content), extension="/../../x"),
    ):
        response = await http.post(f"{store.url}/sync/push", content=push_body(meta, content), headers=sync_headers)
        assert_error(response, 400, "")
    assert stored_files(store) == before
    record = (await http.post(f"{store.api}/ingest", files={"file": ("a.txt", content)})).json()["data"]
    update = can_sync_pb2.MetaUpdate(hash=record["hash"], tags=["../../../tmp/x"], updated_ms=10**13)
    response = await http.post(f"{store.url}/sync/meta", content=update.SerializeToString(), headers=sync_headers)
    assert_error(response, 400, "looks like a path")
    patch = await http.patch(f"{store.api}/asset/{record['hash']}", json={"tags": ["..", "x"]})
    assert_error(patch, 400, "looks like a path")
    [path] = [p for p in asset_files(store.root) if record["hash"] in p.name]
    assert path.parent == store.root and path.name == f"{record['timestamp']}_{record['hash']}.txt"  # untagged
    await assert_still_serving(store, http)


async def test_tags_with_odd_characters_get_a_safe_file_name(store, http) -> None:
    response = await http.post(
        f"{store.api}/ingest", files={"file": ("a.txt", b"odd tags")}, data={"tags": "héllo wörld,a_b,x.y,c:d"}
    )
    assert response.status_code == 200, response.text
    record = response.json()["data"]
    assert record["tags"] == ["héllo wörld", "a_b", "x.y", "c:d"]  # the record keeps them verbatim
    [path] = [p for p in asset_files(store.root) if record["hash"] in p.name]
    assert path.parent == store.root
    assert path.name == f"{record['timestamp']}_{record['hash']}_h-llo-w-rld+a-b+x-y+c-d.txt"
