"""Paths in config.yaml and CANSYNC_* values: Windows spellings are read as written, mistakes get one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cansync.config import ConfigError, load_config


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("spelling", [r"data_dir: C:\Users\me\cansync", r"data_dir: 'C:\Users\me\cansync'"])
def test_a_windows_path_unquoted_or_single_quoted_keeps_its_backslashes(tmp_path: Path, spelling: str) -> None:
    config = load_config(config_file(tmp_path, spelling), environ={})
    assert str(config.data_dir).endswith(r"C:\Users\me\cansync")


def test_a_windows_path_from_the_environment_keeps_its_backslashes(tmp_path: Path) -> None:
    config = load_config(environ={"CANSYNC_DATA_DIR": r"D:\cansync data\node"})
    assert str(config.data_dir).endswith(r"D:\cansync data\node")


def test_a_double_quoted_windows_path_is_refused_in_one_line_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(config_file(tmp_path, r'data_dir: "C:\Users\me\cansync"'), environ={})
    message = str(refused.value)
    assert "\n" not in message and "single quotes" in message


def test_an_escape_that_yaml_turned_into_a_newline_is_caught_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(config_file(tmp_path, r'data_dir: "C:\new"'), environ={})
    message = str(refused.value)
    assert message.startswith("data_dir ") and "control character" in message and "single quotes" in message


def test_a_passphrase_is_read_as_utf_8_not_in_the_locales_code_page(tmp_path: Path) -> None:
    # Windows' default encoding is the locale's code page: a reader that leaves the encoding to the locale
    # gets another passphrase there. Python flags every such read with -X warn_default_encoding.
    path = config_file(tmp_path, "sync_passphrase: grüße aus Köln\n")
    script = f"from cansync.config import load_config; print(ascii(load_config({str(path)!r}).sync_passphrase))"
    result = subprocess.run(
        [sys.executable, "-X", "warn_default_encoding", "-W", "error::EncodingWarning", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ascii("grüße aus Köln")
