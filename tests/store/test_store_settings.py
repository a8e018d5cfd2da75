"""How `cansync store serve` finds its settings: flags, then CAN_PORT, then config.yaml, then defaults."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from cansync.store.settings import DEFAULT_PORT, StoreConfigError, load_store_settings
from tests.helpers.store_process import free_port, start_store_process


def test_precedence_flags_then_can_port_then_config(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("storage_root: ./data\nsync_api_key: from-file\nadmin_token: x\nenable_thumbnail_cache: true\n")
    from_file = load_store_settings(config_path=config, environ={})
    assert from_file.root == (tmp_path / "data").resolve()
    assert from_file.sync_key == "from-file" and from_file.port == DEFAULT_PORT and from_file.host == "127.0.0.1"
    with_env = load_store_settings(config_path=config, environ={"CAN_PORT": "4321"})
    assert with_env.port == 4321
    flags = load_store_settings(
        config_path=config, root=tmp_path / "other", port=0, sync_key="flag", environ={"CAN_PORT": "4321"}
    )
    assert (flags.root, flags.port, flags.sync_key) == ((tmp_path / "other").resolve(), 0, "flag")
    assert not load_store_settings(root=tmp_path, environ={}).sync_enabled
    key_from_env = load_store_settings(config_path=config, environ={"CANSYNC_STORE_SYNC_KEY": "from-env"})
    assert key_from_env.sync_key == "from-env"


@pytest.mark.parametrize(
    ("text", "env", "words"),
    [
        ("storage_root: [1, 2\n", {}, "not valid YAML"),
        ("stroage_root: ./x\n", {}, "unknown key(s) stroage_root"),
        ("- a\n", {}, "must be a mapping"),
        ("storage_root: ./x\n", {"CAN_PORT": "http"}, "CAN_PORT must be a port number"),
        ("storage_root: ./x\n", {"CAN_PORT": "70000"}, "CAN_PORT must be a port number"),
    ],
)
def test_bad_settings_are_refused_with_the_setting_named(tmp_path: Path, text: str, env: dict, words: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(text)
    with pytest.raises(StoreConfigError) as caught:
        load_store_settings(config_path=config, environ=env)
    assert words in str(caught.value)


async def test_process_takes_its_key_from_config_and_port_from_can_port(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("sync_api_key: key-from-config\n")
    port = free_port()
    store = start_store_process(
        tmp_path / "store", port=None, sync_key=None, extra_args=("--config", str(config)), env={"CAN_PORT": str(port)}
    )
    try:
        assert store.port == port
        async with httpx.AsyncClient(trust_env=False) as http:
            ok = await http.post(f"{store.url}/sync/hashes", headers={"X-Sync-Key": "key-from-config"})
            assert ok.status_code == 200
            assert (await http.post(f"{store.url}/sync/hashes", headers={"X-Sync-Key": "other"})).status_code == 403
    finally:
        assert store.stop() == 0
