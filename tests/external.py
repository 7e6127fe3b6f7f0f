"""Real external services for tests: SeaweedFS (S3) and moto (SQS) as pytest fixtures.

Load with ``pytest_plugins = ["tests.external"]`` in the root conftest. Fixtures:
``s3_server`` (:class:`S3Server`) and ``sqs_server`` (:class:`SqsServer`), both
session-scoped; their ``env()`` gives the variables DPP reads (docs/design.md §6). Both use the
same fixed credentials and region, so ``{**s3_server.env(), **sqs_server.env()}`` is
consistent. Process logs go to the fixture's tmp dir (``<name>.log``).

SeaweedFS 4.48 (``weed server``), what matters:

* Every port is explicit: ``-master.port -volume.port -filer.port -s3.port`` and their
  ``.port.grpc`` twins (the default gRPC port is http port + 10000, which collides or
  overflows with random ports); ``-s3.port.iceberg=0 -s3.port.lance=0`` turn off the two
  extra listeners (8181 and 9101 by default). ``-ip=127.0.0.1 -ip.bind=127.0.0.1``.
* ``-volume.max=0 -master.volumeSizeLimitMB=64`` (a bucket grows 7 volumes on its first
  write), ``-master.telemetry=false``, ``-volume.preStopSeconds=0`` (default 10 s).
* Credentials: ``-s3.config`` with ``{"identities": [{"name", "credentials": [{"accessKey",
  "secretKey"}], "actions": ["Admin", ...]}]}``. Signed requests with those keys work,
  a wrong secret and anonymous requests get 403. The log line "Failed to load IAM
  configuration: no signing key found for STS service" is harmless (STS is not used).
* gRPC also listens on unix sockets ``/tmp/seaweedfs-<role>-grpc-<grpc port>.sock``
  (hard-coded, TMPDIR is ignored) that SeaweedFS does not always remove; the fixture
  removes those of its own ports after stopping it.
* SIGTERM takes ~16 s (the filer's gRPC graceful stop waits 15 s for its metadata
  subscribers), so the fixture gives it 2 s and then SIGKILLs: the data is throwaway.
* Metadata keys come back lower-cased, as on AWS: ``MixedCase-Key`` is returned as
  ``X-Amz-Meta-mixedcase-key`` and boto3 reports ``mixedcase-key``. DPP's keys
  (``run-id``, ``tenant-id``, ``lease-token``, ``sha256``, ``charge-usd-micros``) are
  already lower-case and round-trip exactly. Values are returned unchanged.
* The endpoint is an IP address, so botocore uses path-style URLs
  (``http://127.0.0.1:PORT/<bucket>/<key>``).
* Presigned GETs work, but mind the signature: a boto3 client without
  ``signature_version="s3v4"`` presigns with legacy SigV2 (``AWSAccessKeyId=…&Signature=…``)
  even in us-east-1. SeaweedFS accepts both; AWS refuses SigV2 on new buckets, so clients
  (``S3Server.client()``, django-storages ``signature_version``) should ask for s3v4.

kombu 5.7 SQS transport against a plain-http endpoint (moto_server):

* The endpoint comes from the broker URL: ``sqs://KEY:SECRET@127.0.0.1:PORT`` makes
  kombu use ``endpoint_url=http://127.0.0.1:PORT``; the scheme is https only if the
  transport option ``is_secure`` is truthy (unset means http). With no host in the URL
  (``sqs://``) boto3's regional AWS endpoint is used. User and password are URL-unquoted
  and used as the AWS keys; without them boto3 falls back to the AWS_* variables.
* ``predefined_queues`` (``{"runs": {"url": ...}, "reaper": {"url": ...}}``): kombu then
  never lists or creates queues and refuses any queue not in the map. The Celery queue
  name (``runs``) is the key; the SQS queue (``dpp-runs``) is only in the URL.
* ``region`` must equal the region the queues were created in (moto keeps one backend
  per region, taken from the request signature); otherwise "queue does not exist".
* The ``visibility_timeout`` transport option is applied only to queues kombu creates,
  so it is ignored for predefined queues: their ``VisibilityTimeout`` attribute rules.
  This fixture creates the queues with :data:`SQS_VISIBILITY_TIMEOUT_SEC`.
* Consuming uses kombu's pycurl client against the same endpoint; moto serves long
  polling (``wait_time_seconds``).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import quote

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

HOST = "127.0.0.1"
ACCESS_KEY = "dpptestaccesskey"
SECRET_KEY = "dpp-test-secret-key"  # throwaway, for the local servers  # pragma: allowlist secret
REGION = "us-east-1"
S3_BUCKET = "dpp-results"
SQS_QUEUES = {"runs": "dpp-runs", "reaper": "dpp-reaper"}  # Celery queue -> SQS queue
SQS_VISIBILITY_TIMEOUT_SEC = 360  # 3 x the default DPP_LEASE_TTL_SEC, as in settings

START_TIMEOUT_SEC = 60.0
START_ATTEMPTS = 3  # a fresh set of free ports for each attempt
WEED_STOP_GRACE_SEC = 2.0

# Short timeouts and no retries while probing a server that is still starting.
_PROBE_CONFIG = Config(connect_timeout=1, read_timeout=5, retries={"total_max_attempts": 1})
# Loaded here, not in the forked child: dlopen after fork can deadlock.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1


class ProcessExitedError(RuntimeError):
    """The process exited before it became ready."""


def free_ports(count: int, host: str = HOST) -> list[int]:
    """``count`` distinct ports that are free right now (all held open while picking)."""
    with ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(sock.getsockname()[1])
        return ports


def free_port(host: str = HOST) -> int:
    return free_ports(1, host)[0]


def venv_binary(name: str) -> str:
    """Path of a console script next to this interpreter (the virtualenv), else on PATH."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name!r} is not installed in {Path(sys.executable).parent}")
    return found


def _die_with_parent() -> None:
    """Runs in the child before exec (Linux): SIGTERM it if pytest dies without cleaning
    up, e.g. killed, or ended by ``os._exit`` as pytest-timeout's thread method does."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ManagedProcess:
    """A subprocess in its own process group, logging to ``<log_dir>/<name>.log``.

    ``start(ready=...)`` waits until the probe returns True; ``stop()`` sends SIGTERM to
    the group, then SIGKILL after a grace period; ``kill9()`` SIGKILLs the group at once
    (a crash). Use it as a context manager so it is stopped whatever happens.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        leftovers: Sequence[Path] = (),
    ) -> None:
        self.name = name
        self.leftovers = list(leftovers)  # files it may leave outside log_dir, removed on stop
        self.argv = list(argv)
        self.log_path = log_dir / f"{name}.log"
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._finished = False  # stopped and reaped: its pid (= pgid) may be reused now

    @property
    def _popen(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self._proc

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(
        self,
        ready: Callable[[], bool] | None = None,
        timeout: float = START_TIMEOUT_SEC,
        interval: float = 0.2,
    ) -> ManagedProcess:
        if self._proc is not None:
            raise RuntimeError(f"{self.name} was already started")
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        if ready is not None:
            try:
                self.wait_until(ready, timeout=timeout, interval=interval)
            except BaseException:
                self.stop()
                raise
        return self

    def wait_until(self, probe: Callable[[], bool], timeout: float, interval: float = 0.2) -> None:
        """Poll ``probe`` until it returns True; fail early if the process exits."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise ProcessExitedError(
                    f"{self.name} exited with {self.returncode} before it was ready:\n"
                    f"{self.log_tail()}"
                )
            if probe():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.name} not ready after {timeout:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(interval)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _signal_group(self, sig: signal.Signals) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM the group, SIGKILL it after ``grace`` seconds; returns the exit code."""
        if self._proc is None or self._finished:
            return self.returncode
        if self._proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self._proc.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self._proc.wait()
        self._signal_group(signal.SIGKILL)  # stragglers that outlived the group leader
        self._clean_up()
        return self._proc.returncode

    def kill9(self) -> int:
        """SIGKILL the whole group now, as a machine or container crash would."""
        if not self._finished:
            self._signal_group(signal.SIGKILL)
        returncode = self._popen.wait()
        self._clean_up()
        return returncode

    def _clean_up(self) -> None:
        self._finished = True
        for path in self.leftovers:
            path.unlink(missing_ok=True)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


T = TypeVar("T")


def _start_on_free_ports(
    make: Callable[[int], tuple[ManagedProcess, Callable[[], bool], T]],
) -> tuple[ManagedProcess, T]:
    """Start the server that ``make(attempt)`` builds on freshly picked ports; retry with
    new ports if it exits early (a port was taken between picking and binding).
    ``make`` returns (process, readiness probe, what the caller needs to know)."""
    for attempt in range(1, START_ATTEMPTS + 1):
        process, probe, info = make(attempt)
        try:
            process.start(ready=probe)
        except ProcessExitedError:
            if attempt == START_ATTEMPTS:
                raise
            continue
        return process, info
    raise AssertionError("unreachable")


# --- S3: SeaweedFS -----------------------------------------------------------------------


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    bucket: str
    access_key: str
    secret_key: str
    region: str
    process: ManagedProcess = field(repr=False)

    def env(self) -> dict[str, str]:
        return {
            "AWS_STORAGE_BUCKET_NAME": self.bucket,
            "AWS_S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def client(self, config: Config | None = None) -> Any:
        """A boto3 S3 client for this server (SigV4, also for presigned URLs)."""
        return _s3_client(self.endpoint_url, config)


def _s3_client(endpoint_url: str, config: Config | None = None) -> Any:
    sigv4 = Config(signature_version="s3v4")
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=sigv4 if config is None else sigv4.merge(config),
    )


def _s3_writable(endpoint_url: str, bucket: str) -> bool:
    """Ready means the bucket exists and an object can be written: the S3 gateway, filer,
    master and volume server are all up."""
    client = _s3_client(endpoint_url, _PROBE_CONFIG)
    try:
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError:
            client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key=".ready", Body=b"")
        client.delete_object(Bucket=bucket, Key=".ready")
    except (BotoCoreError, ClientError):
        return False
    return True


def _weed_server(base: Path, attempt: int) -> tuple[ManagedProcess, Callable[[], bool], str]:
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = free_ports(8)
    data_dir = base / f"data{attempt}"
    data_dir.mkdir()
    s3_config = base / "s3.json"
    s3_config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "dpp",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    argv = [
        venv_binary("weed"),
        "server",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        f"-dir={data_dir}",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.volumeSizeLimitMB=64",
        "-master.telemetry=false",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-volume.max=0",
        "-volume.preStopSeconds=0",
        "-filer",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={base / f'filer-{filer}.sock'}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.localSocket={base / f's3-{s3}.sock'}",
        f"-s3.config={s3_config}",
    ]
    endpoint_url = f"http://{HOST}:{s3}"
    grpc_sockets = [
        Path(f"/tmp/seaweedfs-{role}-grpc-{port}.sock")
        for role, port in [
            ("master", master_grpc),
            ("volume", volume_grpc),
            ("filer", filer_grpc),
            ("s3", s3_grpc),
        ]
    ]
    process = ManagedProcess(
        f"seaweedfs{attempt}", argv, log_dir=base, cwd=base, leftovers=grpc_sockets
    )
    return process, lambda: _s3_writable(endpoint_url, S3_BUCKET), endpoint_url


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """SeaweedFS (master, volume, filer, S3 gateway) with bucket ``dpp-results``."""
    base = tmp_path_factory.mktemp("seaweedfs")
    process, endpoint_url = _start_on_free_ports(lambda attempt: _weed_server(base, attempt))
    try:
        yield S3Server(
            endpoint_url=endpoint_url,
            bucket=S3_BUCKET,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            region=REGION,
            process=process,
        )
    finally:
        process.stop(grace=WEED_STOP_GRACE_SEC)


# --- SQS: moto_server --------------------------------------------------------------------


@dataclass(frozen=True)
class SqsServer:
    endpoint_url: str
    port: int
    access_key: str
    secret_key: str
    region: str
    queue_urls: dict[str, str]  # SQS queue name -> URL
    process: ManagedProcess = field(repr=False)

    @property
    def runs_queue_url(self) -> str:
        return self.queue_urls[SQS_QUEUES["runs"]]

    @property
    def reaper_queue_url(self) -> str:
        return self.queue_urls[SQS_QUEUES["reaper"]]

    @property
    def broker_url(self) -> str:
        user, password = quote(self.access_key, safe=""), quote(self.secret_key, safe="")
        return f"sqs://{user}:{password}@{HOST}:{self.port}"

    def broker_transport_options(self) -> dict[str, Any]:
        """kombu SQS options for this server: Celery queue names mapped to queue URLs."""
        return {
            "region": self.region,
            "is_secure": False,
            "predefined_queues": {
                celery_queue: {"url": self.queue_urls[sqs_queue]}
                for celery_queue, sqs_queue in SQS_QUEUES.items()
            },
            "wait_time_seconds": 1,
            "polling_interval": 0.5,
        }

    def env(self) -> dict[str, str]:
        return {
            "CELERY_BROKER_URL": self.broker_url,
            "DPP_SQS_RUNS_QUEUE_URL": self.runs_queue_url,
            "DPP_SQS_REAPER_QUEUE_URL": self.reaper_queue_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def client(self, config: Config | None = None) -> Any:
        """A boto3 SQS client for this server."""
        return _sqs_client(self.endpoint_url, config)

    def queue_url(self, queue: str) -> str:
        """URL of a queue given as URL, SQS name (``dpp-runs``) or Celery name (``runs``)."""
        if queue.startswith(("http://", "https://")):
            return queue
        return self.queue_urls.get(queue) or self.queue_urls[SQS_QUEUES[queue]]

    def _attribute(self, queue: str, name: str) -> int:
        response = self.client().get_queue_attributes(
            QueueUrl=self.queue_url(queue), AttributeNames=[name]
        )
        return int(response["Attributes"][name])

    def depth(self, queue: str) -> int:
        """ApproximateNumberOfMessages: visible messages waiting in the queue."""
        return self._attribute(queue, "ApproximateNumberOfMessages")

    def in_flight(self, queue: str) -> int:
        """ApproximateNumberOfMessagesNotVisible: received but not yet deleted (acked)."""
        return self._attribute(queue, "ApproximateNumberOfMessagesNotVisible")

    def drain(self, queue: str) -> int:
        """Delete every visible message of a queue; returns how many. (PurgeQueue is
        allowed once per 60 s per queue, in moto as on AWS.)"""
        client, url, deleted = self.client(), self.queue_url(queue), 0
        while messages := client.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            client.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
            deleted += len(messages)
        return deleted


def _sqs_client(endpoint_url: str, config: Config | None = None) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=endpoint_url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=config,
    )


def _sqs_answers(endpoint_url: str) -> bool:
    try:
        _sqs_client(endpoint_url, _PROBE_CONFIG).list_queues()
    except (BotoCoreError, ClientError):
        return False
    return True


def _moto_server(base: Path, attempt: int) -> tuple[ManagedProcess, Callable[[], bool], int]:
    port = free_port()
    endpoint_url = f"http://{HOST}:{port}"
    argv = [venv_binary("moto_server"), "-H", HOST, "-p", str(port)]
    process = ManagedProcess(f"moto{attempt}", argv, log_dir=base, cwd=base)
    return process, lambda: _sqs_answers(endpoint_url), port


@pytest.fixture(scope="session")
def sqs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqsServer]:
    """moto_server with the queues ``dpp-runs`` and ``dpp-reaper``."""
    base = tmp_path_factory.mktemp("moto")
    process, port = _start_on_free_ports(lambda attempt: _moto_server(base, attempt))
    try:
        endpoint_url = f"http://{HOST}:{port}"
        client = _sqs_client(endpoint_url)
        queue_urls = {
            name: client.create_queue(
                QueueName=name,
                Attributes={"VisibilityTimeout": str(SQS_VISIBILITY_TIMEOUT_SEC)},
            )["QueueUrl"]
            for name in SQS_QUEUES.values()
        }
        yield SqsServer(
            endpoint_url=endpoint_url,
            port=port,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            region=REGION,
            queue_urls=queue_urls,
            process=process,
        )
    finally:
        process.stop()
