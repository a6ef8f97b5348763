"""S3 through boto3: AWS, SeaweedFS, Ceph, Garage, Wasabi and other S3-compatible servers.

Why it is shaped this way:

- **Streaming, bounded memory.** Bytes arrive through `write()`; once more than
  one part's worth has arrived the writer starts a multipart upload and sends
  parts from a small thread pool. At most `concurrency` parts are in flight and
  one more is filling, so memory is about (concurrency + 2) x part size whatever
  the object's size. An object that fits in one part is sent with one PutObject.
- **The server proves what it stored.** Every request body carries its SHA-256
  (`x-amz-checksum-sha256`); the server recomputes it and refuses a mismatch. A
  multipart object's server checksum is a SHA-256 over the parts' SHA-256s
  ("composite", suffixed `-N`), so the writer keeps every part's digest, computes
  the same composite and compares like with like; the part digests go into
  `StoredObject.checksum_detail` for later fixity checks. The whole-object SHA-256
  is computed here too and checked against the caller's before anything is
  published. A server that returns no checksum gets a read-back instead.
  Because the checksum header is signed and verified by the server, the body is
  not hashed a second time for the signature (`payload_signing_enabled=False`).
- **Names are never reused.** Every write is conditional (`If-None-Match: *`, on
  PutObject and on CompleteMultipartUpload) after a HEAD that fails early; with
  versioning the catalog records the version id and reads go by it.
- **Object Lock.** With `object_lock` and `retention_days` every write carries
  that retention; the server then refuses to delete the version.
- **Bounded failure.** Connect and read timeouts and a small number of attempts
  are set on the client; credential errors are final (botocore does not retry a
  403) and become `AuthFailed` with a message that names the environment
  variables, never their values.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

from storage.base import (
    CHUNK,
    MARKER_MAX_BYTES,
    MARKER_NAME,
    ObjectInfo,
    ObjectMissing,
    ObjectWriter,
    StorageError,
    StoredObject,
    VerificationFailed,
)
from storage.s3_common import (
    PROBE_TIMEOUT,
    BucketMissing,
    RemoteBackend,
    SdkBodyReader,
    Unreachable,
    b64_sha256,
    check_sent,
    classify,
    composite_sha256,
    credentials_from_env,
)


def translate(exc: Exception, where: str, action: str, *, name: str | None = None) -> StorageError:
    """Turn a botocore failure into the archive's error types, with a message a person can act on."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    what = f"{where}: {action}" + (f" {name}" if name else "")
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return classify(what, action, code, status, str(error.get("Message", "")))
    if isinstance(exc, ConnectTimeoutError | EndpointConnectionError):
        return Unreachable(f"{what}: the server does not answer")
    if isinstance(exc, ReadTimeoutError):
        return Unreachable(f"{what}: the server did not answer in time")
    if isinstance(exc, ConnectionClosedError):
        return Unreachable(f"{what}: the server closed the connection")
    if isinstance(exc, BotoCoreError):
        return StorageError(f"{what}: {exc}")
    return StorageError(f"{what}: {type(exc).__name__}: {exc}")


class S3Writer(ObjectWriter):
    """One staged object: a single PutObject when small, else a parallel multipart upload."""

    def __init__(self, backend: S3Backend, name: str) -> None:
        self._backend = backend
        self._name = name
        self._key = backend.key(name)
        self._opts = backend.options
        self._sha = hashlib.sha256()
        self._size = 0
        # bytes received but not yet sent, as zero-copy views of the caller's chunks
        self._pending: deque[memoryview] = deque()
        self._pending_size = 0
        self._upload_id: str | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._futures: list[Future[dict[str, Any]]] = []
        self._slots = threading.Semaphore(self._opts.concurrency)
        self._failure: BaseException | None = None
        self._done = False
        backend.prepare_write(name)

    # -- streaming ---------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._done:
            raise StorageError(f"{self._backend.where}: write after commit or abort")
        if self._failure is not None:
            self.abort()
            raise self._failure
        if not data:
            return
        if not isinstance(data, bytes):
            data = bytes(data)  # the caller may reuse a mutable buffer; bytes are safe to keep
        self._sha.update(data)
        self._size += len(data)
        self._pending.append(memoryview(data))
        self._pending_size += len(data)
        # Send whole parts, keeping at least one byte back so the last part is never empty.
        part_size = self._opts.part_size
        while self._pending_size > part_size:
            self._send_part(self._take(part_size))

    def _take(self, size: int) -> bytes:
        """The next `size` pending bytes as one object: one copy at most, none when a chunk is a whole part."""
        pieces: list[memoryview] = []
        taken = 0
        while taken < size:
            view = self._pending[0]
            need = size - taken
            if len(view) <= need:
                pieces.append(self._pending.popleft())
                taken += len(view)
            else:
                pieces.append(view[:need])
                self._pending[0] = view[need:]
                taken = size
        self._pending_size -= size
        if len(pieces) == 1 and isinstance(pieces[0].obj, bytes) and len(pieces[0]) == len(pieces[0].obj):
            return pieces[0].obj
        return b"".join(pieces)

    def _start_multipart(self) -> None:
        backend = self._backend
        try:
            response = backend.client.create_multipart_upload(
                Bucket=self._opts.bucket,
                Key=self._key,
                ChecksumAlgorithm="SHA256",
                **backend.write_args(),
            )
        except Exception as exc:  # noqa: BLE001 - translated
            raise translate(exc, backend.where, "start upload of", name=self._name) from exc
        self._upload_id = str(response["UploadId"])
        self._pool = ThreadPoolExecutor(self._opts.concurrency, thread_name_prefix=f"s3-{backend.name}")

    def _send_part(self, part: bytes) -> None:
        if self._upload_id is None:
            self._start_multipart()
        assert self._pool is not None
        self._slots.acquire()  # bounded memory: wait for a free slot before queueing more
        if self._failure is not None:
            self._slots.release()
            failure = self._failure
            self.abort()
            raise failure
        number = len(self._futures) + 1
        future = self._pool.submit(self._upload_part, number, part)
        future.add_done_callback(self._part_done)
        self._futures.append(future)

    def _part_done(self, future: Future[dict[str, Any]]) -> None:
        self._slots.release()
        if not future.cancelled() and future.exception() is not None and self._failure is None:
            self._failure = future.exception()

    def _upload_part(self, number: int, part: bytes) -> dict[str, Any]:
        backend = self._backend
        digest = hashlib.sha256(part).digest()
        checksum = b64_sha256(digest)
        try:
            response = backend.client.upload_part(
                Bucket=self._opts.bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=part,
                ChecksumSHA256=checksum,
                **backend.sse_c_args(),
            )
        except Exception as exc:  # noqa: BLE001 - translated
            raise translate(exc, backend.where, f"upload part {number} of", name=self._name) from exc
        echoed = response.get("ChecksumSHA256")
        if echoed is not None and echoed != checksum:
            raise VerificationFailed(
                f"{backend.where}: part {number} of {self._name}: server checksum {echoed} != sent {checksum}"
            )
        return {
            "PartNumber": number,
            "ETag": response["ETag"],
            "ChecksumSHA256": checksum,
            "digest": digest,
            "size": len(part),
            "server": echoed,
        }

    # -- publishing --------------------------------------------------------------

    def commit(self, expected_sha256: str) -> StoredObject:
        if self._done:
            raise StorageError(f"{self._backend.where}: commit after commit or abort")
        try:
            if self._upload_id is None:
                stored = self._put_single(expected_sha256)
            else:
                stored = self._complete_multipart(expected_sha256)
        except BaseException:
            self.abort()
            raise
        self._done = True
        return stored

    def _put_single(self, expected_sha256: str) -> StoredObject:
        backend = self._backend
        check_sent(backend.where, self._name, self._sha.hexdigest(), expected_sha256)
        body = self._take(self._pending_size)
        checksum = b64_sha256(self._sha.digest())
        try:
            response = backend.client.put_object(
                Bucket=self._opts.bucket,
                Key=self._key,
                Body=body,
                ChecksumSHA256=checksum,
                IfNoneMatch="*",
                **backend.write_args(),
            )
        except Exception as exc:  # noqa: BLE001 - translated
            raise translate(exc, backend.where, "write", name=self._name) from exc
        version_id = response.get("VersionId")
        detail: dict[str, object] = {"algorithm": "SHA256", "type": "FULL_OBJECT", "checksum": checksum}
        self._verify(response.get("ChecksumSHA256"), checksum, version_id, expected_sha256, detail)
        return StoredObject(backend.name, self._name, self._size, expected_sha256, version_id, detail)

    def _complete_multipart(self, expected_sha256: str) -> StoredObject:
        backend = self._backend
        if self._pending_size:
            self._send_part(self._take(self._pending_size))
        parts = [future.result() for future in self._futures]  # raises the first part failure
        check_sent(backend.where, self._name, self._sha.hexdigest(), expected_sha256)
        composite = composite_sha256([part["digest"] for part in parts])
        try:
            response = backend.client.complete_multipart_upload(
                Bucket=self._opts.bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={
                    "Parts": [
                        {"PartNumber": p["PartNumber"], "ETag": p["ETag"], "ChecksumSHA256": p["ChecksumSHA256"]}
                        for p in parts
                    ]
                },
                IfNoneMatch="*",
                **backend.sse_c_args(),
            )
        except Exception as exc:  # noqa: BLE001 - translated
            raise translate(exc, backend.where, "complete upload of", name=self._name) from exc
        self._upload_id = None  # completed: nothing left to abort
        version_id = response.get("VersionId")
        detail: dict[str, object] = {
            "algorithm": "SHA256",
            "type": "COMPOSITE",
            "checksum": composite,
            "part_size": self._opts.part_size,
            "parts": [part["ChecksumSHA256"] for part in parts],
        }
        self._verify(response.get("ChecksumSHA256"), composite, version_id, expected_sha256, detail)
        return StoredObject(backend.name, self._name, self._size, expected_sha256, version_id, detail)

    def _verify(
        self,
        server: str | None,
        ours: str,
        version_id: str | None,
        expected_sha256: str,
        detail: dict[str, object],
    ) -> None:
        """The server's checksum (asked for when the response had none) must equal ours; else read back."""
        backend = self._backend
        if server is None:
            server = backend.server_checksum(self._name, version_id)
        backend.confirm(self._name, version_id, server=server, ours=ours, expected_sha256=expected_sha256,
                        size=self._size, detail=detail)

    def abort(self) -> None:
        """Stop sending, abort any multipart upload; nothing was published, so nothing is deleted."""
        if self._done:
            return
        self._done = True
        for future in self._futures:
            future.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._pending.clear()
        self._pending_size = 0
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            try:
                self._backend.client.abort_multipart_upload(
                    Bucket=self._opts.bucket, Key=self._key, UploadId=upload_id
                )
            except Exception:  # noqa: BLE001 - best effort: a lifecycle rule can clean up the rest
                pass


class S3Backend(RemoteBackend):
    """A bucket (and optional prefix) on an S3-compatible server."""

    kind = "s3"

    def _make_client(self, *, probe: bool = False) -> Any:
        import boto3
        from botocore.config import Config

        creds = self._credentials or credentials_from_env(self.name)
        opts = self.options
        s3_config: dict[str, Any] = {"payload_signing_enabled": False}
        if opts.endpoint:
            s3_config["addressing_style"] = "path"
        config = Config(
            connect_timeout=min(opts.connect_timeout, PROBE_TIMEOUT) if probe else opts.connect_timeout,
            read_timeout=min(opts.read_timeout, PROBE_TIMEOUT) if probe else opts.read_timeout,
            retries={"max_attempts": 1 if probe else opts.max_attempts, "mode": "standard"},
            s3=s3_config,
            max_pool_connections=max(10, opts.concurrency * 2),
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            tcp_keepalive=True,
        )
        return boto3.session.Session().client(
            "s3",
            endpoint_url=opts.endpoint,
            region_name=opts.region or "us-east-1",
            aws_access_key_id=creds.access_key,
            aws_secret_access_key=creds.secret_key,
            config=config,
        )

    # -- request arguments ---------------------------------------------------------

    def sse_c_args(self) -> dict[str, Any]:
        if self._sse_c_key is None:
            return {}
        return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": self._sse_c_key}

    def write_args(self) -> dict[str, Any]:
        """Encryption and retention arguments for PutObject and CreateMultipartUpload."""
        args = self.sse_c_args()
        if self.options.sse == "aws:kms":
            args["ServerSideEncryption"] = "aws:kms"
            if self.options.kms_key_id:
                args["SSEKMSKeyId"] = self.options.kms_key_id
        elif self.options.sse == "sse-s3":
            args["ServerSideEncryption"] = "AES256"
        until = self.options.retain_until()
        if until is not None:
            args["ObjectLockMode"] = self.options.object_lock
            args["ObjectLockRetainUntilDate"] = until
        return args

    def _read_args(self, name: str, version_id: str | None) -> dict[str, Any]:
        args: dict[str, Any] = {"Bucket": self.options.bucket, "Key": self.key(name), **self.sse_c_args()}
        if version_id:
            args["VersionId"] = version_id
        return args

    # -- the Backend interface -------------------------------------------------------

    def open_writer(self, name: str, size_hint: int | None = None) -> ObjectWriter:
        return S3Writer(self, name)

    def open_reader(self, name: str, version_id: str | None = None) -> BinaryIO:
        try:
            response = self.client.get_object(**self._read_args(name, version_id))
        except Exception as exc:  # noqa: BLE001 - translated
            error = translate(exc, self.where, "read", name=name)
            if isinstance(error, ObjectMissing):
                self._raise_if_bucket_missing()
            raise error from exc
        body = response["Body"]
        return io.BufferedReader(SdkBodyReader(body.read, body.close, translate, self.where, name), CHUNK)

    def stat(self, name: str, version_id: str | None = None) -> ObjectInfo | None:
        try:
            response = self.client.head_object(**self._read_args(name, version_id))
        except Exception as exc:  # noqa: BLE001 - translated
            error = translate(exc, self.where, "stat", name=name)
            if isinstance(error, ObjectMissing):
                self._raise_if_bucket_missing()
                return None
            raise error from exc
        return ObjectInfo(name, int(response["ContentLength"]), response.get("VersionId"))

    def server_checksum(self, name: str, version_id: str | None = None) -> str | None:
        """The SHA-256 checksum the server keeps for the object (composite ones end in -N), if any."""
        try:
            response = self.client.head_object(ChecksumMode="ENABLED", **self._read_args(name, version_id))
        except Exception as exc:  # noqa: BLE001 - translated
            raise translate(exc, self.where, "stat", name=name) from exc
        checksum = response.get("ChecksumSHA256")
        return str(checksum) if checksum else None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        strip = len(self.options.prefix)
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.options.bucket, Prefix=self.options.prefix + prefix
            )
            for page in pages:
                for entry in page.get("Contents", []):
                    name = str(entry["Key"])[strip:]
                    if name != MARKER_NAME:  # the marker is the site's, not an object
                        yield ObjectInfo(name, int(entry["Size"]))
        except StorageError:
            raise
        except Exception as exc:  # noqa: BLE001 - translated
            raise translate(exc, self.where, "list") from exc

    def delete(self, name: str, version_id: str | None = None) -> None:
        args: dict[str, Any] = {"Bucket": self.options.bucket, "Key": self.key(name)}
        if version_id:
            args["VersionId"] = version_id
        try:
            self.client.delete_object(**args)
        except Exception as exc:  # noqa: BLE001 - translated
            raise translate(exc, self.where, "delete", name=name) from exc

    def check(self) -> None:
        """Raise a clear `StorageError` unless the bucket answers as configured."""
        try:
            self.probe_client.head_bucket(Bucket=self.options.bucket)
        except Exception as exc:  # noqa: BLE001 - translated
            error = translate(exc, self.where, "open bucket")
            if isinstance(error, ObjectMissing):
                error = BucketMissing(f"{self.where}: the bucket does not exist")
            raise self.with_auth_hint(error) from exc
        if self.options.object_lock:
            try:
                config = self.probe_client.get_object_lock_configuration(Bucket=self.options.bucket)
            except Exception as exc:  # noqa: BLE001 - translated
                raise StorageError(
                    f"{self.where}: object_lock is configured but the bucket has no Object Lock"
                ) from exc
            if config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
                raise StorageError(f"{self.where}: object_lock is configured but the bucket has no Object Lock")

    # -- helpers ----------------------------------------------------------------------

    def _get_marker(self) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.options.bucket, Key=self.marker_key, **self.sse_c_args())
        except Exception as exc:  # noqa: BLE001 - translated
            raise translate(exc, self.where, "read", name=MARKER_NAME) from exc
        body = response["Body"]
        try:
            return bytes(body.read(MARKER_MAX_BYTES + 1))
        except Exception as exc:  # noqa: BLE001 - translated
            raise translate(exc, self.where, "read", name=MARKER_NAME) from exc
        finally:
            body.close()

    def _put_marker(self, data: bytes) -> None:
        """One conditional PutObject (`If-None-Match: *`): atomic, so two writers can never both win."""
        try:
            self.client.put_object(
                Bucket=self.options.bucket,
                Key=self.marker_key,
                Body=data,
                ContentType="application/json",
                ChecksumSHA256=b64_sha256(hashlib.sha256(data).digest()),
                IfNoneMatch="*",
                **self.write_args(),
            )
        except Exception as exc:  # noqa: BLE001 - translated
            raise translate(exc, self.where, "write", name=MARKER_NAME) from exc

    def _raise_if_bucket_missing(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.options.bucket)
        except Exception as exc:  # noqa: BLE001 - translated
            error = translate(exc, self.where, "open bucket")
            if isinstance(error, ObjectMissing | BucketMissing):
                raise BucketMissing(f"{self.where}: the bucket does not exist") from exc
            raise error from exc
