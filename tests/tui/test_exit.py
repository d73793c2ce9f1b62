"""Leaving the console cleanly: ``q``, Ctrl+C, SIGTERM, and a terminal hangup (SIGHUP).

These run the real ``bakong-console`` (no arguments: the embedded SQLite database and the
built-in sandbox, under an isolated home) on a pseudo-terminal, because the signal handlers and
the engine's lifecycle live in ``run_console``, around the App. Each console makes a payment and
has the sandbox pay it, and is stopped straight away, while the payment may still be in the
poller's hands. Afterwards the database must show the worker leases released (another process
can take the jobs at once) and no half-written change: every payment's status is its last
history row, with one event per history row, and SQLite's integrity check passes.

The consoles run side by side (one per way of leaving) to keep the test short. The child makes
the pty its controlling terminal, so closing our end is a hangup the kernel signals (SIGHUP).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest

CONSOLE = Path(sys.executable).with_name("bakong-console")
# Run in the child before the console: take the pty (stdin) as the controlling terminal.
_TAKE_TERMINAL = "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); os.execv(sys.argv[1], sys.argv[1:])"

pytestmark = pytest.mark.skipif(not CONSOLE.exists(), reason="the bakong-console script is not installed in this environment")


class ConsoleOnPty:
    """One ``bakong-console`` process on its own pseudo-terminal and home directory."""

    def __init__(self, how: str, home: Path) -> None:
        self.how = how
        self.home = home
        self.db = home / "data" / "bakong-console" / "bakong-console.db"
        self.screen = bytearray()
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_DATA_HOME": str(home / "data"),
            "TERM": "xterm-256color",
            "LANG": "C.UTF-8",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _TAKE_TERMINAL, str(CONSOLE)],
            stdin=slave, stdout=slave, stderr=slave, env=env, cwd=home, start_new_session=True, close_fds=True,
        )  # fmt: skip
        os.close(slave)
        self.master: int | None = master

    def read(self) -> None:
        """Take what the console wrote (it blocks once the pty's buffer is full)."""
        if self.master is None:
            return
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: the console closed its side
            chunk = b""
        if chunk:
            self.screen.extend(chunk)
        else:
            self.close()

    def type(self, data: bytes) -> None:
        assert self.master is not None
        os.write(self.master, data)

    def close(self) -> None:
        if self.master is not None:
            os.close(self.master)
            self.master = None

    def query(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=rw", uri=True, timeout=5)) as conn:
            return conn.execute(sql, args).fetchall()

    def leases(self) -> list[tuple[object, ...]]:
        return self.query("SELECT name, holder FROM leases ORDER BY name")

    def holds_the_leases(self) -> bool:
        """True once this process holds the five worker leases (poller, expirer, renewer, deliverer, reconciler) (False before the database exists)."""
        try:
            leases = self.leases()
        except sqlite3.OperationalError:  # no database, or not migrated yet
            return False
        return len([h for _, h in leases if f":{self.proc.pid}:" in str(h)]) == 5

    def stop(self) -> None:
        if self.how == "q":
            self.type(b"q")
        elif self.how == "ctrl+c":
            self.type(b"\x03")
        elif self.how == "hangup":
            self.close()
        else:
            self.proc.send_signal(getattr(signal, self.how))


def pump(consoles: list[ConsoleOnPty], done: Callable[[ConsoleOnPty], bool], what: str, timeout: float = 30.0) -> None:
    """Read every console's output until ``done`` holds for each of them."""
    deadline = time.monotonic() + timeout
    while not all(done(c) for c in consoles):
        if time.monotonic() > deadline:
            late = [c.how for c in consoles if not done(c)]
            tails = {c.how: bytes(c.screen[-300:]) for c in consoles if not done(c)}
            raise AssertionError(f"timed out waiting for {what}: {late}; exit codes {[c.proc.poll() for c in consoles]}; {tails}")
        masters = {c.master: c for c in consoles if c.master is not None}
        if not masters:
            time.sleep(0.02)
            continue
        readable, _, _ = select.select(list(masters), [], [], 0.05)
        for fd in readable:
            masters[fd].read()


def test_q_ctrl_c_sigterm_and_hangup_release_the_leases_and_leave_no_half_written_change(tmp_path: Path) -> None:
    # "hangup" closes the terminal: the kernel sends the console SIGHUP (the handler is the
    # SIGTERM one; a hung-up terminal also makes the last writes fail).
    ways = ["q", "ctrl+c", "SIGTERM", "hangup"]
    consoles = []
    for how in ways:
        home = tmp_path / how.replace("+", "_")
        home.mkdir()
        consoles.append(ConsoleOnPty(how, home))
    try:
        # Up: the board is drawn and this process holds the five worker leases.
        pump(consoles, lambda c: b"SANDBOX" in c.screen and c.holds_the_leases(), "the consoles to start and take the worker leases")
        for c in consoles:
            c.type(b"n")
        pump(consoles, lambda c: b"Enter shows the KHQR" in c.screen, "the cashier screen")
        for c in consoles:
            c.screen.clear()
            c.type(b"5000\r")
        pump(consoles, lambda c: len(c.query("SELECT id FROM payments")) == 1 and b"expires in" in c.screen, "the payment's QR")
        for c in consoles:
            c.type(b"p")  # the sandbox pays and the poller is asked to check now...
        for c in consoles:
            c.stop()  # ...and the console is stopped in the middle of that
        pump(consoles, lambda c: c.proc.poll() is not None, "the consoles to exit")
    finally:
        for c in consoles:
            if c.proc.poll() is None:
                c.proc.kill()
                c.proc.wait(10)
            c.close()

    for c in consoles:
        assert c.proc.returncode == 0, (c.how, c.proc.returncode)
        assert c.leases() == [], (c.how, c.leases())
        assert c.query("PRAGMA integrity_check") == [("ok",)], c.how
        [(payment_id, status, amount)] = c.query("SELECT id, status, amount_minor FROM payments")
        assert amount == 5000 and status in ("PENDING", "PAID"), (c.how, status)
        history = [to for (to,) in c.query("SELECT to_status FROM payment_status_history WHERE payment_id = ? ORDER BY id", payment_id)]
        events = [t for (t,) in c.query("SELECT type FROM events WHERE subject_id = ? ORDER BY sequence", payment_id)]
        assert history[0] == "PENDING" and history[-1] == status, (c.how, history, status)
        assert events == {"PENDING": ["payment.created"], "PAID": ["payment.created", "payment.completed"]}[status], (c.how, events)
        assert len(history) == len(events), (c.how, history, events)
