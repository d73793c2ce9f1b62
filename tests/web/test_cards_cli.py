"""`bakong-console payments card ID -o FILE`: the payment's card, the engine's bytes, written whole."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from typer.testing import CliRunner

from bakong_console.cli.main import app
from engine.khqr.card import render_card_svg
from engine.khqr.card_png import render_card_png
from tests.support.settings import TEST_DATA_KEY

runner = CliRunner()


def _cli(config: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--config", str(config), *args])
    return result.exit_code, result.stdout, result.stderr


def test_payments_card_writes_the_engines_card(tmp_path: Path) -> None:
    config = tmp_path / "cli.toml"
    config.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "cli.db"}"\n[security]\ndata_key = "{TEST_DATA_KEY}"\n',
        encoding="utf-8",
    )
    assert _cli(config, "db", "upgrade")[0] == 0
    code, out, _ = _cli(config, "pay", "--amount", "5000", "--currency", "KHR", "--reference", "table-4", "--json")
    assert code == 0
    payment = json.loads(out)
    expires = datetime.fromisoformat(payment["expires_at"].replace("Z", "+00:00"))

    code, out, _ = _cli(config, "payments", "card", "table-4", "-o", str(tmp_path / "card.png"), "--size", "480")
    assert code == 0 and out.strip() == f"PNG:  {tmp_path / 'card.png'}"
    assert (tmp_path / "card.png").read_bytes() == render_card_png(payment["khqr"], expires_at=expires, size=480)
    code, _, _ = _cli(config, "payments", "card", payment["id"], "-o", str(tmp_path / "card.svg"))
    assert code == 0
    assert (tmp_path / "card.svg").read_text(encoding="utf-8") == render_card_svg(payment["khqr"], expires_at=expires)

    code, _, err = _cli(config, "payments", "card", payment["id"], "-o", str(tmp_path / "card.jpg"))
    assert code != 0 and err.count("\n") == 1 and "name the file .png or .svg" in err
    code, _, err = _cli(config, "payments", "card", payment["id"], "-o", str(tmp_path / "missing" / "card.png"))
    assert code != 0 and err.count("\n") == 1 and "cannot write" in err
    assert not (tmp_path / "missing").exists()
    code, _, err = _cli(config, "payments", "card", "no-such-order", "-o", str(tmp_path / "x.png"))
    assert code != 0 and err.count("\n") == 1 and not (tmp_path / "x.png").exists()
