"""The public CAN API of a real `cansync store serve` process: ingest, read back, list, search,
trash/restore, metadata updates, and the error envelope."""

from __future__ import annotations

import hashlib
import json
import os

import httpx
from store_files import asset_files, check_index_matches_files

from tests.helpers.store_process import StoreProcess


async def ingest(http: httpx.AsyncClient, store: StoreProcess, content: bytes, **fields: str) -> dict:
    name = fields.pop("filename", "photo.jpg")
    response = await http.post(f"{store.api}/ingest", files={"file": (name, content)}, data=fields)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success"
    return body["data"]


async def test_ingest_file_and_read_it_back_byte_for_byte(store: StoreProcess, http: httpx.AsyncClient) -> None:
    content = os.urandom(3 * 1024 * 1024 + 17)
    record = await ingest(
        http,
        store,
        content,
        filename="holiday.jpg",
        tags="vacation,beach",
        application="camera",
        user="ann",
        description="sunset",
        human_readable_path="/photos/2026/",
    )
    assert record["hash"] == hashlib.sha256(content).hexdigest()
    assert record["size"] == len(content)
    assert record["tags"] == ["vacation", "beach"]
    assert record["human_file_name"] == "holiday.jpg"
    assert record["mime_type"] == "image/jpeg"
    assert record["extension"] == "jpg"
    assert (record["application"], record["user"], record["description"]) == ("camera", "ann", "sunset")
    assert record["human_readable_path"] == "/photos/2026/"
    assert record["trashed"] is False
    assert 10**12 < record["timestamp"] < 10**13  # milliseconds since the epoch

    got = await http.get(f"{store.api}/asset/{record['hash']}")
    assert got.status_code == 200
    assert got.content == content
    assert got.headers["content-type"].startswith("image/jpeg")

    [path] = asset_files(store.root)
    assert path.name == f"{record['timestamp']}_{record['hash']}_vacation+beach.jpg"
    assert check_index_matches_files(store.root) == 1


async def test_same_content_twice_is_one_asset(store: StoreProcess, http: httpx.AsyncClient) -> None:
    first = await ingest(http, store, b"same bytes", tags="one")
    second = await ingest(http, store, b"same bytes", tags="two")
    assert second == first  # the existing record comes back unchanged
    listed = (await http.get(f"{store.api}/list")).json()["data"]
    assert [r["hash"] for r in listed] == [first["hash"]]
    assert check_index_matches_files(store.root) == 1


async def test_ingest_data_stores_json(store: StoreProcess, http: httpx.AsyncClient) -> None:
    payload = {"note": "buy milk", "items": [1, 2, 3]}
    response = await http.post(f"{store.api}/ingest/data", json={"data": payload, "tags": "notes,todo"})
    assert response.status_code == 200, response.text
    record = response.json()["data"]
    assert record["tags"] == ["notes", "todo"]
    assert record["mime_type"] == "application/json"
    assert record["extension"] == "json"
    content = (await http.get(f"{store.api}/asset/{record['hash']}")).content
    assert json.loads(content) == payload
    assert record["hash"] == hashlib.sha256(content).hexdigest()


async def test_list_and_search_by_tags(store: StoreProcess, http: httpx.AsyncClient) -> None:
    a = await ingest(http, store, b"a", tags="x,y")
    b = await ingest(http, store, b"b", tags="y")
    c = await ingest(http, store, b"c")
    listed = (await http.get(f"{store.api}/list")).json()
    assert listed["status"] == "success"
    assert {r["hash"] for r in listed["data"]} == {a["hash"], b["hash"], c["hash"]}
    by_y = (await http.get(f"{store.api}/search", params={"tags": "y"})).json()["data"]
    assert {r["hash"] for r in by_y} == {a["hash"], b["hash"]}
    by_xy = (await http.get(f"{store.api}/search", params={"tags": "x,y"})).json()["data"]
    assert [r["hash"] for r in by_xy] == [a["hash"]]
    none = (await http.get(f"{store.api}/search", params={"tags": "zzz"})).json()["data"]
    assert none == []
    missing = await http.get(f"{store.api}/search")
    assert missing.status_code == 400 and missing.json()["status"] == "error"


async def test_trash_and_restore_move_the_file(store: StoreProcess, http: httpx.AsyncClient) -> None:
    record = await ingest(http, store, b"to be trashed", tags="t")
    live_path = store.root / f"{record['timestamp']}_{record['hash']}_t.jpg"
    assert live_path.exists()

    trashed = (await http.post(f"{store.api}/asset/{record['hash']}/trash")).json()["data"]
    assert trashed["trashed"] is True
    assert trashed["meta_updated_ms"] > 0
    assert not live_path.exists()
    assert (store.root / ".trash" / live_path.name).exists()
    assert (await http.get(f"{store.api}/list")).json()["data"] == []
    with_trashed = (await http.get(f"{store.api}/list", params={"include_trashed": "true"})).json()["data"]
    assert [r["hash"] for r in with_trashed] == [record["hash"]]
    assert (await http.get(f"{store.api}/asset/{record['hash']}")).content == b"to be trashed"

    restored = (await http.post(f"{store.api}/asset/{record['hash']}/restore")).json()["data"]
    assert restored["trashed"] is False
    assert restored["meta_updated_ms"] > trashed["meta_updated_ms"]
    assert live_path.exists() and not (store.root / ".trash" / live_path.name).exists()
    assert check_index_matches_files(store.root) == 1


async def test_metadata_update(store: StoreProcess, http: httpx.AsyncClient) -> None:
    record = await ingest(http, store, b"meta", tags="old", description="before")
    response = await http.patch(
        f"{store.api}/asset/{record['hash']}", json={"tags": "new,fresh", "description": "after"}
    )
    assert response.status_code == 200, response.text
    updated = response.json()["data"]
    assert updated["tags"] == ["new", "fresh"]
    assert updated["description"] == "after"
    assert updated["changed_seq"] > record["changed_seq"]
    assert (await http.get(f"{store.api}/search", params={"tags": "old"})).json()["data"] == []
    assert [r["hash"] for r in (await http.get(f"{store.api}/search", params={"tags": "fresh"})).json()["data"]] == [
        record["hash"]
    ]
    [path] = asset_files(store.root)
    assert path.name == f"{record['timestamp']}_{record['hash']}_new+fresh.jpg"  # tags are part of the name
    bad = await http.patch(f"{store.api}/asset/{record['hash']}", json={"hash": "x"})
    assert bad.status_code == 400 and "hash" in bad.json()["error"]


async def test_unknown_can_id_and_unknown_asset_answer_404_envelopes(
    store: StoreProcess, http: httpx.AsyncClient
) -> None:
    for url in (
        f"{store.url}/api/v1/can/1/list",
        f"{store.url}/api/v1/can/abc/asset/{'0' * 64}",
        f"{store.api}/asset/{'0' * 64}",
        f"{store.api}/no-such-route",
    ):
        response = await http.get(url)
        assert response.status_code == 404, url
        body = response.json()
        assert body["status"] == "error" and body["error"], url
    wrong_container = await http.post(f"{store.url}/api/v1/can/7/ingest", files={"file": ("a", b"a")})
    assert wrong_container.status_code == 404
    assert "can_id 0" in wrong_container.json()["error"]
    assert asset_files(store.root) == []
    unknown_trash = await http.post(f"{store.api}/asset/{'1' * 64}/trash")
    assert unknown_trash.status_code == 404 and unknown_trash.json()["status"] == "error"
