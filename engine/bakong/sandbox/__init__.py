"""The Bakong sandbox: a faithful fake of the Bakong Open API, in-process or as a server.

``create_sandbox_app(store, clock=…, token=…, email=…)`` returns the ASGI app (its state object is
``app.state.sandbox``, a ``BakongSandbox``); serve it with uvicorn, or reach it in-process with
``httpx.ASGITransport(app)``. ``SandboxControl`` drives a running one (pay, faults, stats).
"""

from engine.bakong.sandbox.app import BakongSandbox, create_sandbox_app
from engine.bakong.sandbox.bank_app import PAYER_ACCOUNTS
from engine.bakong.sandbox.control import DEFAULT_SANDBOX_URL, SandboxControl
from engine.bakong.sandbox.faults import LIST_ITEM_LAYOUTS, MALFORMED_KINDS, SandboxFaults
from engine.bakong.sandbox.server import ThreadedServer, serve_forever
from engine.bakong.sandbox.store import FileTransferStore, InMemoryTransferStore, SandboxTransfer, TransferStore
from engine.bakong.sandbox.tokens import TOKEN_LIFETIME_SECONDS, issue_token, verify_token

__all__ = [
    "DEFAULT_SANDBOX_URL",
    "LIST_ITEM_LAYOUTS",
    "MALFORMED_KINDS",
    "PAYER_ACCOUNTS",
    "TOKEN_LIFETIME_SECONDS",
    "BakongSandbox",
    "FileTransferStore",
    "InMemoryTransferStore",
    "SandboxControl",
    "SandboxFaults",
    "SandboxTransfer",
    "ThreadedServer",
    "TransferStore",
    "create_sandbox_app",
    "issue_token",
    "serve_forever",
    "verify_token",
]
