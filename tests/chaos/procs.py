"""The chaos suite's processes: moto (S3), the broker on S3 storage, and `ingestor run` instances.

Everything binds 127.0.0.1, and every process started here is registered so the teardown can
kill it, whatever happened.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ingestor.kafka.embedded import free_port
from tests.integration.daemon_process import Daemon

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "chaos",
    "AWS_SECRET_ACCESS_KEY": "chaos",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ALLOW_HTTP": "true",
}


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class Moto:
    """moto's S3 server on loopback, with one bucket."""

    def __init__(self, workdir: Path, bucket: str) -> None:
        self.port = free_port("127.0.0.1")
        self.bucket = bucket
        self.endpoint = f"http://127.0.0.1:{self.port}"
        moto = Path(sys.executable).with_name("moto_server")
        self._log = open(workdir / "moto.log", "wb")  # noqa: SIM115 - closed in kill()
        self.process = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        wait_for_port(self.port, 30, self.process)
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
            region_name=S3_ENV["AWS_DEFAULT_REGION"],
        )
        s3.create_bucket(Bucket=bucket)

    def env(self) -> dict[str, str]:
        """What the embedded broker (Rust object_store) reads to reach this S3."""
        return {**S3_ENV, "AWS_ENDPOINT": self.endpoint}

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


class Broker:
    """`ingestor broker --storage s3://bucket/` on a fixed port, so clients find it again after a restart."""

    def __init__(self, workdir: Path, config: Path, moto: Moto) -> None:
        self.port = free_port("127.0.0.1")
        self.address = f"127.0.0.1:{self.port}"
        self._workdir = workdir
        self._config = config
        self._moto = moto
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self._workdir / f"broker-{self.starts}.log", "wb")  # noqa: SIM115 - child owns it
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ingestor",
                "broker",
                "--config",
                str(self._config),
                "--port",
                str(self.port),
                "--storage",
                f"s3://{self._moto.bucket}/",
                "--log-format",
                "json",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self._moto.env(), "RUST_LOG": "warn"},
        )
        log.close()
        wait_for_port(self.port, 60, self.process)

    def stop(self) -> None:
        """SIGTERM: `ingestor broker` stops its broker child and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class Fleet:
    """Every `ingestor run` instance of a run, by name, killable and restartable."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.running: dict[str, Daemon] = {}
        self.retired: list[Daemon] = []
        self.kills = 0
        self.history: list[tuple[str, Daemon]] = []  # every process started, in order, by name

    def start(self, name: str, *stages: str) -> Daemon:
        args = [arg for stage in stages for arg in ("--stage", stage)]
        daemon = Daemon(self.config, *args)
        self.running[name] = daemon
        self.history.append((name, daemon))
        return daemon

    def sigkill(self, name: str) -> None:
        daemon = self.running.pop(name)
        daemon.kill()
        self.retired.append(daemon)
        self.kills += 1

    def terminate(self, name: str) -> int:
        daemon = self.running.pop(name)
        self.retired.append(daemon)
        try:
            code, _ = daemon.terminate(timeout=15)
        except subprocess.TimeoutExpired:
            daemon.kill()
            return -9
        return code

    def kill_all(self) -> None:
        for name in list(self.running):
            self.sigkill(name)

    def dump_logs(self, directory: Path) -> None:
        """Every process's log lines, one file per process, to read a failure after the fact."""
        directory.mkdir(parents=True, exist_ok=True)
        for n, (name, daemon) in enumerate(self.history):
            (directory / f"{n:02d}-{name}.log").write_text("\n".join(daemon.lines) + "\n")

    def all_lines(self) -> list[str]:
        return [line for d in [*self.retired, *self.running.values()] for line in d.lines]
