"""The console's own server for the payer's pages ([web] host:port): pages and their script are
served while it runs, a taken port leaves the console running without it, and open event
streams end when it stops."""

from __future__ import annotations

import asyncio

import httpx

from bakong_console.web.server import console_web_server
from engine.clock import SystemClock
from engine.records import Actor, ActorType
from engine.runtime import Engine
from tests.support.net import free_port, taken_port
from tests.support.settings import make_settings

ADMIN = Actor(ActorType.CLI, "test")


async def test_the_console_serves_the_pages_and_stops_with_open_streams(sqlite_url: str) -> None:
    port = free_port()
    settings = make_settings(sqlite_url, web={"port": port})
    async with Engine.open(settings, clock=SystemClock(), migrate=True) as engine:
        payment = (await engine.payments.initiate("2.00", "USD", actor=ADMIN)).payment
        link = await engine.checkout.open(payment.id, success_url=None, cancel_url=None, actor=ADMIN)
        async with console_web_server(engine) as url:
            assert url == f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=url, timeout=5) as client:
                page = await client.get(link.path)
                assert page.status_code == 200 and "Sandbox Shop" in page.text
                assert (await client.get("/pay/static/pay.css")).status_code == 200
                assert (await client.get("/api/health")).status_code == 404  # the pages only
                stream = client.stream("GET", link.path + "/events")
                response = await stream.__aenter__()
                first = await anext(response.aiter_lines())
                assert first == "event: state"
        # Leaving the block ended the stream instead of waiting for the payer to go away.
        await asyncio.wait_for(stream.__aexit__(None, None, None), 5)


async def test_a_taken_port_leaves_the_console_without_pages(sqlite_url: str) -> None:
    with taken_port() as port:
        settings = make_settings(sqlite_url, web={"port": port})
        async with Engine.open(settings, clock=SystemClock(), migrate=True) as engine:
            async with console_web_server(engine) as url:
                assert url is None
    async with Engine.open(make_settings(sqlite_url, web={"enabled": False}), clock=SystemClock()) as engine:
        async with console_web_server(engine) as url:
            assert url is None


async def test_the_console_serves_its_display_on_the_display_address(sqlite_url: str) -> None:
    from bakong_console.web.server import console_display_server

    port = free_port()
    settings = make_settings(sqlite_url, display={"port": port})
    async with Engine.open(settings, clock=SystemClock(), migrate=True) as engine:
        async with console_display_server(engine) as url:
            assert url == f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=url, timeout=5) as client:
                page = await client.get("/display/counter-1")
                assert page.status_code == 200 and 'id="pairing"' in page.text
                assert (await client.get("/display/static/display.css")).status_code == 200
                assert (await client.get("/pay/" + "x" * 43)).status_code == 404  # the display only
    async with Engine.open(make_settings(sqlite_url, display={"enabled": False}), clock=SystemClock()) as engine:
        async with console_display_server(engine) as url:
            assert url is None
