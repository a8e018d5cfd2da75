"""Asset file names Windows accepts, whatever the tags and extensions: the rule is decided here.

A tag may hold any character but `/`, `\\`, `..` and control characters (tags are words to search by). In the
file name, `{timestamp}_{sha256}_{tags}.{ext}`, each tag is reduced to letters, digits and `-`, so no
character Windows refuses can reach the disk; the index keeps the true tags, and search uses those. The name
always starts with the timestamp's digits, so it can never be a device name (CON, NUL, COM1...), and it
ends with a letter, a digit, `-` or `+`, never a dot or a space. An extension is 1-16 letters or digits:
the API refuses any other, and one read from a file name (report.p?f) is left out.
"""

from __future__ import annotations

import hashlib

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from store_files import asset_files

from cansync.portable.windows_names import windows_name_problem
from cansync.store.naming import (
    InvalidName,
    asset_file_name,
    extension_from_name,
    hash_from_file_name,
    parse_tags,
    validate_extension,
)
from tests.helpers.store_process import StoreProcess

HASH = hashlib.sha256(b"x").hexdigest()
HOSTILE_TAGS = ["CON", "nul", "COM1", "lpt9.txt", "a<b>c", 'say "hi"', "a:b", "pipe|d", "why?", "star*", "end.", "end "]


@pytest.mark.parametrize("tag", HOSTILE_TAGS)
def test_a_tag_windows_would_refuse_becomes_a_safe_part_of_the_file_name(tag: str) -> None:
    name = asset_file_name(1_700_000_000_000, HASH, parse_tags(tag), "txt")
    assert windows_name_problem(name) is None, name
    assert hash_from_file_name(name) == HASH


@given(
    timestamp=st.integers(min_value=0, max_value=2**53),
    tags=st.lists(st.text(min_size=1, max_size=40), max_size=8),
    extension=st.sampled_from(["", "txt", "JPG", "tar", "7z", "a" * 16]),
)
def test_no_tag_or_extension_gives_a_name_windows_refuses(timestamp: int, tags: list[str], extension: str) -> None:
    try:
        accepted = parse_tags(tags)
    except InvalidName:  # refused at the API with a message; never reaches a file name
        return
    name = asset_file_name(timestamp, HASH, accepted, extension)
    assert windows_name_problem(name) is None, name
    assert hash_from_file_name(name) == HASH


@pytest.mark.parametrize("extension", ["p?f", "t:xt", "a.b", "txt ", "exe.", "toolongextension17"])
def test_an_extension_windows_would_refuse_is_refused_by_the_api(extension: str) -> None:
    with pytest.raises(InvalidName):
        validate_extension(extension)


@pytest.mark.parametrize(("name", "extension"), [("report.p?f", ""), ("notes.", ""), ("con.TXT", "txt"), ("a.b:c", "")])
def test_an_extension_read_from_a_file_name_is_kept_only_when_safe(name: str, extension: str) -> None:
    assert extension_from_name(name) == extension


async def test_the_index_keeps_the_true_tags_while_the_file_name_is_safe(store: StoreProcess) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"{store.api}/ingest",
            files={"file": ("con.txt", b"a device name in disguise")},
            data={"tags": ",".join(HOSTILE_TAGS)},
        )
        response.raise_for_status()
        record = response.json()["data"]
        assert record["tags"] == [tag.strip() for tag in HOSTILE_TAGS]
        found = (await http.get(f"{store.api}/search", params={"tags": "a:b"})).json()["data"]
        assert [r["hash"] for r in found] == [record["hash"]]
    (path,) = asset_files(store.root)
    assert windows_name_problem(path.name) is None, path.name
    assert path.name.startswith(f"{record['timestamp']}_{record['hash']}_") and path.name.endswith(".txt")
