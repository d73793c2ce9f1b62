"""The sender and its HTTP/1.1 transport against real loopback servers: keep-alive, connections the
server closed, chunked answers, timeouts, redirects, refused connections and TLS."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks import Webhook

from engine.clock import SystemClock
from engine.webhooks import generate_secret
from engine.webhooks.message import OutgoingMessage, encode_body
from engine.webhooks.sender import EXCERPT_BYTES, WebhookSender
from tests.support.receiver import Answer, Receiver

SECRET = generate_secret()


def message(url: str, n: int = 1) -> OutgoingMessage:
    body = encode_body("payment.completed", dt.datetime.now(dt.UTC), {"id": f"pay_{n}"})
    return OutgoingMessage(f"dlv_{n}", "ep_1", url, f"msg_{n}", body, (SECRET,), 1)


@pytest.fixture
async def sender():  # noqa: ANN201
    s = WebhookSender(clock=SystemClock(), timeout_seconds=2.0)
    yield s
    await s.aclose()


async def test_kept_alive_connection_carries_many_signed_messages(sender: WebhookSender, receiver: Receiver) -> None:
    results = [await sender.send(message(receiver.url, n)) for n in range(5)]
    assert [r.status_code for r in results] == [200] * 5 and all(r.succeeded for r in results)
    assert receiver.connections == 1
    for n, request in enumerate(receiver.requests):
        assert Webhook(SECRET).verify(request.body, request.headers)["data"]["id"] == f"pay_{n}"
        assert request.headers["user-agent"].startswith("bakong-console-webhooks/")
        assert "cookie" not in request.headers


async def test_concurrent_messages_open_parallel_connections_and_reuse_them(sender: WebhookSender, receiver: Receiver) -> None:
    first = await asyncio.gather(*(sender.send(message(receiver.url, n)) for n in range(8)))
    second = await asyncio.gather(*(sender.send(message(receiver.url, n)) for n in range(8, 16)))
    assert all(r.succeeded for r in first + second)
    assert receiver.connections == 8
    assert sorted(r.json["data"]["id"] for r in receiver.requests) == sorted(f"pay_{n}" for n in range(16))


async def test_a_connection_the_server_dropped_while_idle_is_replaced(sender: WebhookSender, receiver: Receiver) -> None:
    receiver.drop_reused = True
    results = [await sender.send(message(receiver.url, n)) for n in range(3)]
    assert all(r.succeeded for r in results), results
    assert receiver.dropped == 2 and receiver.connections == 3
    assert [r.json["data"]["id"] for r in receiver.requests] == ["pay_0", "pay_1", "pay_2"]


async def test_connection_close_chunked_and_large_answers(sender: WebhookSender, receiver: Receiver) -> None:
    receiver.script = [
        Answer(200, {"connection": "close"}, b"bye"),
        Answer(500, body=b"y" * 1000, chunked=True),  # two chunks, read to the end
        Answer(204, body=b""),
        Answer(200, body=b"x" * 3000),  # only the excerpt is read; that connection is then dropped
        Answer(200, body=b"fine"),
    ]
    closed, chunked, empty, large, last = [await sender.send(message(receiver.url, n)) for n in range(5)]
    assert closed.succeeded and closed.response_excerpt == "bye"
    assert chunked.status_code == 500 and chunked.response_excerpt == "y" * 1000 and not chunked.succeeded
    assert empty.status_code == 204 and empty.response_excerpt is None and empty.succeeded
    assert large.succeeded and large.response_excerpt == "x" * EXCERPT_BYTES
    assert last.succeeded and last.response_excerpt == "fine"
    # a new connection after "connection: close", and after the answer that was not read to its end
    assert receiver.connections == 3


async def test_redirects_are_failures_and_not_followed(sender: WebhookSender, receiver: Receiver) -> None:
    receiver.script = [Answer(302, {"location": receiver.url_for("/elsewhere")}, b"")]
    result = await sender.send(message(receiver.url))
    assert result.status_code == 302 and not result.succeeded
    assert [r.path for r in receiver.requests] == ["/hooks"]


async def test_no_answer_in_time_and_refused_connections_are_failed_attempts(receiver: Receiver) -> None:
    sender = WebhookSender(clock=SystemClock(), timeout_seconds=0.3)
    try:
        receiver.hold()
        slow = await sender.send(message(receiver.url, 1))
        assert slow.status_code is None and slow.error == "no answer within 0.3 s" and not slow.succeeded
        receiver.release()
        after = await sender.send(message(receiver.url, 2))
        assert after.succeeded  # the abandoned connection was not reused half-way through an exchange
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        refused = await sender.send(message(f"http://127.0.0.1:{port}/hooks"))
        assert refused.status_code is None and refused.error.startswith("cannot connect:")
    finally:
        await sender.aclose()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


async def test_https_verifies_the_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    async with Receiver(tls=server_tls) as receiver:
        untrusting = WebhookSender(clock=SystemClock(), timeout_seconds=5.0)
        trusting = WebhookSender(clock=SystemClock(), timeout_seconds=5.0, tls=ssl.create_default_context(cafile=str(cert)))
        try:
            refused = await untrusting.send(message(receiver.url, 1))
            assert refused.status_code is None and "CERTIFICATE_VERIFY_FAILED" in (refused.error or "")
            results = [await trusting.send(message(receiver.url, n)) for n in (2, 3)]
        finally:
            await untrusting.aclose()
            await trusting.aclose()
    assert receiver.url.startswith("https://")
    assert all(r.succeeded for r in results)
    assert [r.json["data"]["id"] for r in receiver.requests] == ["pay_2", "pay_3"]
    Webhook(SECRET).verify(receiver.requests[0].body, receiver.requests[0].headers)
