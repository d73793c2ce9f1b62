"""`bakong-console displays pair|list|revoke` on both databases: the code printed pairs a display,
the list shows it (never a code or token), revoke ends its token, bad input is one stderr line."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from engine.clock import SystemClock
from engine.config import load_settings
from engine.db.bootstrap import open_storage
from engine.errors import Unauthorized
from engine.records import Actor, ActorType
from engine.services.displays import DisplayService
from tests.support.cli import cli, upgraded
from tests.support.settings import write_config

PAYER = Actor(ActorType.PAYER, "display page", source_ip="127.0.0.1")


@pytest.fixture
def config(db_url: str, tmp_path: Path) -> Path:
    path = write_config(tmp_path / "cli.toml", db_url, '[console]\nterminal = "counter-1"\n[display]\npublic_url = "http://192.0.2.10:8082"\n')
    return upgraded(path)


def _on_displays(config: Path, action):  # noqa: ANN001, ANN202
    async def run():  # noqa: ANN202
        settings = load_settings(config)
        storage = await open_storage(settings, clock=SystemClock())
        try:
            return await action(DisplayService(storage, settings, clock=SystemClock()))
        finally:
            await storage.db.dispose()

    return asyncio.run(run())


def test_pair_list_revoke(config: Path) -> None:
    code, out, _ = cli(config, "displays", "pair")
    assert code == 0
    pairing = re.search(r"pairing code (\d{6})", out)
    assert pairing, out
    assert "open http://192.0.2.10:8082/display/counter-1 on the display" in out
    code, out, _ = cli(config, "displays", "list", "--json")
    (waiting,) = json.loads(out)
    assert (waiting["terminal"], waiting["status"], waiting["paired_at"]) == ("counter-1", "pairing", None)

    token = _on_displays(config, lambda svc: svc.pair("counter-1", pairing.group(1), actor=PAYER)).token
    code, out, _ = cli(config, "displays", "list")
    assert code == 0
    header, line = out.splitlines()
    assert header.split()[:3] == ["ID", "TERMINAL", "STATUS"]
    assert line.split()[:3] == [waiting["id"], "counter-1", "paired"]
    assert pairing.group(1) not in out and token not in out

    code, out, _ = cli(config, "displays", "revoke", waiting["id"])
    assert (code, out) == (0, f"revoked display {waiting['id']} of terminal counter-1\n")
    with pytest.raises(Unauthorized):
        _on_displays(config, lambda svc: svc.authenticate("counter-1", token))
    code, out, _ = cli(config, "displays", "list", "--json", "--terminal", "counter-1")
    assert json.loads(out)[0]["status"] == "revoked" and json.loads(out)[0]["revoked_at"]
    code, _, err = cli(config, "displays", "revoke", waiting["id"])
    assert code != 0 and err == f"error: display {waiting['id']} is already revoked\n"


def test_bad_input_is_one_line_on_stderr(config: Path) -> None:
    code, out, err = cli(config, "displays", "revoke", "dsp_nope")
    assert code != 0 and out == "" and err == "error: no display dsp_nope\n"
    code, _, err = cli(config, "displays", "pair", "Counter 1")
    assert code != 0 and err.count("\n") == 1 and err.startswith("error: no terminal 'Counter 1'")
    code, out, _ = cli(config, "displays", "list")
    assert (code, out) == (0, "no displays (pair one: bakong-console displays pair)\n")
    code, out, _ = cli(config, "displays", "pair", "counter-9")
    assert code == 0 and "/display/counter-9 " in out
