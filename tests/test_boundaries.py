"""What a process loads at run time: importing the engine, or running `serve`, loads no Textual.

Which module may import which is checked on the source by the import-linter contracts in
pyproject.toml (`lint-imports`, run by CI); these tests cover what the contracts cannot see, the
modules a real process ends up loading.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _loaded_after(code: str, tmp_path: Path) -> set[str]:
    probe = (
        "import sys\n" + code + "\nprint(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    env = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_importing_the_engine_loads_no_textual_typer_or_face(tmp_path: Path) -> None:
    loaded = _loaded_after(
        "import engine, engine.runtime, engine.services.payments, engine.workers.poller, engine.bakong.sandbox, engine.khqr",
        tmp_path,
    )
    assert not loaded & {"textual", "typer", "bakong_console"}


def test_running_serve_loads_no_textual(tmp_path: Path) -> None:
    code = """
import asyncio, dataclasses, socket
from engine.config import Settings
from bakong_console.daemon import run_daemon
from bakong_console.cli import main  # the CLI as `bakong-console serve` loads it

async def go():
    stop = asyncio.Event()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = Settings()
    settings = dataclasses.replace(base, api=dataclasses.replace(base.api, enabled=True, host="127.0.0.1", port=port))
    code = await run_daemon(settings, on_ready=lambda engine: stop.set(), stop=stop)
    assert code == 0
asyncio.run(go())
"""
    loaded = _loaded_after(code, tmp_path)
    assert "engine" in loaded and "fastapi" in loaded and "textual" not in loaded
