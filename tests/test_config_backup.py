"""POST /api/config/backup: rotating copies beside the file (.bak1 newest .. .bakN), 503 when the folder
cannot be written."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from config_helpers import file_hangar

from conftest import raw_server
from mcp_hangar.config import load_config
from mcp_hangar.hangar import Hangar
from mcp_hangar.web.app import create_app

__all__ = ["file_hangar"]


def _doc(keep: int) -> dict[str, Any]:
    return {"mcp_servers": {"a": raw_server()}, "config_reload": {"enabled": False, "backup_count": keep}}


async def test_backups_rotate_newest_first_and_keep_n(file_hangar: Any) -> None:
    _, client, path = await file_hangar(_doc(3))
    base = path.read_text()
    made = []
    for version in range(1, 6):
        path.write_text(base + f"# version {version}\n")
        r = await client.post("/api/config/backup")
        assert r.status_code == 200, r.text
        made.append(r.json())
    assert all(m["path"] == str(path.with_name("config.yaml.bak1")) for m in made)
    assert made[-1]["backups"] == [str(path.with_name(f"config.yaml.bak{n}")) for n in (1, 2, 3)]
    contents = [path.with_name(f"config.yaml.bak{n}").read_text().rsplit("# ", 1)[1] for n in (1, 2, 3)]
    assert contents == ["version 5\n", "version 4\n", "version 3\n"]
    assert not path.with_name("config.yaml.bak4").exists()
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.yaml", "config.yaml.bak1", "config.yaml.bak2",
                                                             "config.yaml.bak3"]  # no temporary file left


async def test_the_default_keeps_five(file_hangar: Any) -> None:
    _, client, path = await file_hangar({"mcp_servers": {}, "config_reload": {"enabled": False}})
    for _ in range(7):
        assert (await client.post("/api/config/backup")).status_code == 200
    assert len((await client.post("/api/config/backup")).json()["backups"]) == 5
    assert not path.with_name("config.yaml.bak6").exists()


@pytest.fixture
def readonly_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder holding a config file that cannot be written: chmod for a normal user; for root (who
    ignores modes) a tmpfs remounted read-only."""
    folder = tmp_path / "ro"
    folder.mkdir()
    text = yaml.safe_dump(_doc(5))
    if os.geteuid() != 0:
        (folder / "config.yaml").write_text(text)
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True)
    if mount.returncode != 0:
        pytest.skip(f"running as root and cannot mount a read-only tmpfs: {mount.stderr.decode().strip()}")
    try:
        (folder / "config.yaml").write_text(text)
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True, capture_output=True)
        yield folder
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            subprocess.run(["umount", str(folder)], check=True, capture_output=True)


async def test_an_unwritable_folder_answers_503_in_the_envelope(readonly_folder: Path, tmp_path: Path) -> None:
    import httpx

    hangar = Hangar(load_config(readonly_folder / "config.yaml"), tmp_path / "data")
    await hangar.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(hangar, manage_lifecycle=False)),
                                     base_url="http://testserver") as client:
            r = await client.post("/api/config/backup")
    finally:
        await hangar.aclose()
    assert r.status_code == 503
    assert r.json() == {"error": "ConfigNotWritableError", "status_code": 503,
                        "message": f"{readonly_folder}: the folder is not writable; no backup was made"}
    assert sorted(p.name for p in readonly_folder.iterdir()) == ["config.yaml"]


async def test_without_a_file_there_is_nothing_to_back_up(api_factory: Any) -> None:
    _, client = await api_factory({})
    r = await client.post("/api/config/backup")
    assert r.status_code == 404 and r.json()["error"] == "NotFoundError"
