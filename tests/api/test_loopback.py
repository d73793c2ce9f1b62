"""The API served by uvicorn over real loopback HTTP, configured as `serve` runs it: requests work
end to end and a local client cannot choose its address with X-Forwarded-For."""

from __future__ import annotations

import asyncio

import httpx
import uvicorn

from bakong_console.api import create_app
from bakong_console.api.server import uvicorn_config
from engine.db import journal
from engine.runtime import Engine
from tests.support.net import free_port


async def test_served_over_loopback_with_proxy_headers_ignored(engine: Engine, key: str) -> None:
    app = create_app(engine)
    port = free_port()
    server = uvicorn.Server(uvicorn_config(app, engine.settings.api, host="127.0.0.1", port=port))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            response = await client.post(
                "/api/payments/create",
                json={"amount": "2.50", "currency": "USD"},
                headers={"X-API-Key": key, "X-Forwarded-For": "192.0.2.99"},
            )
            assert response.status_code == 201, response.text
            assert "server" not in response.headers
            docs = await client.get("/api/docs")
            assert docs.status_code == 200 and "swagger" in docs.text.lower()
            assert (await client.get("/api/openapi.json")).json()["info"]["title"] == "bakong-console API"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        await app.state.api.aclose()
    async with engine.storage.read() as tx:
        (entry,) = await journal.list_audit(tx, action="payment.create")
    assert entry.source_ip == "127.0.0.1"


def test_settle_heap_freezes_start_up_objects_once() -> None:
    """serve calls settle_heap once the app is built: start-up objects leave the collector's
    generations, the youngest is collected less often, and a second call freezes nothing more."""
    import subprocess
    import sys

    code = (
        "import gc\n"
        "from bakong_console.api.server import GEN0_THRESHOLD, settle_heap\n"
        "assert gc.get_freeze_count() == 0 and gc.get_threshold()[0] != GEN0_THRESHOLD\n"
        "settle_heap()\n"
        "frozen = gc.get_freeze_count()\n"
        "assert frozen > 10_000, frozen\n"
        "assert gc.get_threshold()[0] == GEN0_THRESHOLD\n"
        "junk = [object() for _ in range(1000)]\n"
        "settle_heap()\n"
        "assert gc.get_freeze_count() == frozen\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
