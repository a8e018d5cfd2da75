"""Names that come from clients: validation of tags and file names, and the on-disk file name.

A physical file is `{timestamp}_{sha256}_{tags}.{ext}` under storage_root. Client values never reach
the file system unchecked: tags and names that look like paths are refused, and what goes into a file
name is further reduced to a safe alphabet, so no name can contain `/`, `..`, NUL or a drive letter.
The same makes every name valid on Windows: tags are reduced to letters, digits and `-` in the file name
only (the index keeps the true tags), an extension is 1-16 letters or digits, and the name starts with
the timestamp's digits, so it is never a device name (CON, NUL, COM1) and never ends in a dot or space.
tests/store/test_file_names_on_windows.py holds this to portable.windows_names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_TAG_LENGTH = 128
MAX_TAGS = 64
MAX_NAME_LENGTH = 1024
MAX_TAG_PART_IN_FILE_NAME = 96
TAG_SEPARATOR_IN_FILE_NAME = "+"
_EXTENSION_PATTERN = re.compile(r"[A-Za-z0-9]{1,16}")
_UNSAFE_IN_FILE_NAME = re.compile(r"[^A-Za-z0-9-]+")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class InvalidName(ValueError):
    """A client-supplied tag, name or extension the store refuses; the message says which and why."""


def _looks_like_path(value: str) -> bool:
    return "/" in value or "\\" in value or value in (".", "..") or value.startswith("..")


def validate_tag(tag: str) -> str:
    tag = tag.strip()
    if not tag:
        raise InvalidName("empty tag")
    if len(tag) > MAX_TAG_LENGTH:
        raise InvalidName(f"tag longer than {MAX_TAG_LENGTH} characters: {tag[:40]!r}...")
    if _CONTROL_CHARS.search(tag) or _looks_like_path(tag) or ".." in tag:
        raise InvalidName(f"tag {tag!r} looks like a path or holds control characters; use plain words")
    return tag


def parse_tags(raw: str | Iterable[str] | None) -> list[str]:
    """Tags from a comma-separated string or a list; duplicates dropped, order kept."""
    if raw is None:
        return []
    if not isinstance(raw, str | list | tuple):
        raise InvalidName(f"tags must be a comma-separated string or a list of strings, got {type(raw).__name__}")
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    tags: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidName(f"tags must be strings, got {item!r}")
        if isinstance(raw, str) and not item.strip():
            continue  # "a,,b" and a trailing comma are harmless in the comma form
        tag = validate_tag(item)
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise InvalidName(f"at most {MAX_TAGS} tags per asset, got {len(tags)}")
    return tags


def _require_utf8(value: str, field: str) -> None:
    """A header decoded with surrogate escapes (a file name in bytes that are not UTF-8) cannot be indexed
    or answered as JSON: refuse it here rather than fail on the way into the index."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidName(f"{field} is not valid UTF-8") from None


def validate_file_name(name: str, field: str = "human_file_name") -> str:
    """A logical file name (report.pdf): a single name, never a path."""
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"{field} longer than {MAX_NAME_LENGTH} characters")
    _require_utf8(name, field)
    if name and (_CONTROL_CHARS.search(name) or _looks_like_path(name)):
        raise InvalidName(f"{field} {name!r} looks like a path; send a plain file name such as report.pdf")
    return name


def validate_text(value: str, field: str) -> str:
    """Free text (description, logical path, application, user): no NUL, bounded length."""
    if "\x00" in value:
        raise InvalidName(f"{field} contains a NUL character")
    _require_utf8(value, field)
    if len(value) > 64 * 1024:
        raise InvalidName(f"{field} longer than 65536 characters")
    return value


def validate_extension(extension: str) -> str:
    extension = extension.lstrip(".")
    if extension and not _EXTENSION_PATTERN.fullmatch(extension):
        raise InvalidName(f"extension {extension!r} must be 1-16 letters or digits")
    return extension.lower()


def extension_from_name(name: str) -> str:
    """The extension of a logical file name, or "" when it has none the store can use."""
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem or not _EXTENSION_PATTERN.fullmatch(suffix):
        return ""
    return suffix.lower()


def asset_file_name(timestamp: int, asset_hash: str, tags: Iterable[str], extension: str) -> str:
    """`{timestamp}_{sha256}_{tags}.{ext}`, with `_{tags}` / `.{ext}` left out when empty."""
    safe_tags = [_UNSAFE_IN_FILE_NAME.sub("-", tag).strip("-") for tag in tags]
    tag_part = TAG_SEPARATOR_IN_FILE_NAME.join(t for t in safe_tags if t)[:MAX_TAG_PART_IN_FILE_NAME]
    name = f"{int(timestamp)}_{asset_hash}"
    if tag_part:
        name += f"_{tag_part}"
    ext = validate_extension(extension)
    if ext:
        name += f".{ext}"
    return name


def hash_from_file_name(file_name: str) -> str | None:
    """The sha256 part of a physical file name, or None when the name is not an asset's."""
    parts = file_name.split(".", 1)[0].split("_")
    if len(parts) < 2 or not parts[0].isdigit():
        return None
    return parts[1]
