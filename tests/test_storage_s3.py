"""The S3 driver (boto3) and the MinIO driver (minio SDK) against real SeaweedFS servers.

Every test runs once per driver (`make_backend` is parametrised), on the two
session-wide `weed` sites from `tests.s3_fixtures`.
"""

# ruff: noqa: F811 - pytest fixtures are imported by name and then requested as arguments
from __future__ import annotations

import base64
import hashlib
import os
import time
import tracemalloc
from typing import Any

import pytest

from storage.base import ObjectMissing, StorageError, VerificationFailed
from storage.s3_common import AuthFailed, BucketMissing, RetentionRefused, Unreachable, composite_sha256
from tests.s3_fixtures import make_backend, site_a, site_b, weed_sites  # noqa: F401 - fixtures
from tests.servers import SlowProxy, WeedServer

MIB = 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_stream(backend: Any, name: str, blocks: int, block: int = MIB) -> tuple[Any, str]:
    """Stream `blocks` pseudo-random blocks through a writer; returns (StoredObject, sha256)."""
    digest = hashlib.sha256()
    seed = os.urandom(block)
    writer = backend.open_writer(name)
    for i in range(blocks):
        data = i.to_bytes(8, "little") + seed[8:]
        digest.update(data)
        writer.write(data)
    return writer.commit(digest.hexdigest()), digest.hexdigest()


def test_put_get_stat_list_delete(make_backend: Any, site_a: WeedServer) -> None:
    backend = make_backend(site_a, versioned=False)
    assert backend.health() is None
    stored = backend.put_bytes("items/aa/one", b"first object")
    assert stored.sha256 == sha(b"first object") and stored.size == 12
    assert stored.checksum_detail["verified_by"] == "server checksum"
    backend.put_bytes("items/bb/two", b"second")
    with backend.open_reader("items/aa/one", stored.version_id) as stream:
        assert stream.read() == b"first object"
    info = backend.stat("items/aa/one")
    assert info is not None and info.size == 12
    assert backend.stat("items/none") is None
    assert sorted(o.name for o in backend.list("items/")) == ["items/aa/one", "items/bb/two"]
    assert [o.name for o in backend.list("items/bb")] == ["items/bb/two"]
    assert backend.sha256_of("items/bb/two") == (sha(b"second"), 6)
    backend.delete("items/bb/two")
    assert backend.stat("items/bb/two") is None
    with pytest.raises(ObjectMissing):
        backend.open_reader("items/bb/two")
    with pytest.raises(StorageError, match="invalid object name"):
        backend.put_bytes("../escape", b"x")


def test_names_are_never_reused(make_backend: Any, site_a: WeedServer) -> None:
    backend = make_backend(site_a)
    backend.put_bytes("obj", b"original")
    with pytest.raises(StorageError, match="already exists"):
        backend.put_bytes("obj", b"replacement")
    with backend.open_reader("obj") as stream:
        assert stream.read() == b"original"


def test_read_by_version_survives_an_overwrite(make_backend: Any, site_a: WeedServer) -> None:
    backend = make_backend(site_a, versioned=True)
    stored = backend.put_bytes("evidence", b"what the archive received")
    assert stored.version_id
    # someone with bucket access overwrites the key behind the archive's back
    site_a.client().put_object(  # type: ignore[attr-defined]
        Bucket=backend.options.bucket, Key=backend.key("evidence"), Body=b"forged"
    )
    with backend.open_reader("evidence", stored.version_id) as stream:
        assert stream.read() == b"what the archive received"
    assert backend.sha256_of("evidence", stored.version_id)[0] == stored.sha256
    info = backend.stat("evidence", stored.version_id)
    assert info is not None and info.version_id == stored.version_id


def test_large_object_streams_in_bounded_memory(make_backend: Any, site_a: WeedServer) -> None:
    backend = make_backend(site_a, part_size_mib=5, concurrency=4)
    tracemalloc.start()
    try:
        stored, digest = write_stream(backend, "big/object", 100)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # (in flight + filling) parts of 5 MiB and the pipe, whatever the object's size
    assert peak < 48 * MIB, f"peak {peak / MIB:.0f} MiB for a 100 MiB object"
    assert stored.size == 100 * MIB and stored.sha256 == digest
    assert backend.sha256_of("big/object", stored.version_id) == (digest, 100 * MIB)
    detail = stored.checksum_detail
    if make_backend.kind == "s3":
        assert detail["type"] == "COMPOSITE" and len(detail["parts"]) == 20
        assert detail["verified_by"] == "server checksum"
    else:
        assert detail["verified_by"] == "read-back"


def test_multipart_part_checksums_compare_like_with_like(make_backend: Any, site_a: WeedServer) -> None:
    if make_backend.kind != "s3":
        pytest.skip("the minio SDK sends no per-part checksums; its driver verifies by read-back")
    backend = make_backend(site_a, part_size_mib=5)
    data = os.urandom(12 * MIB + 123)
    writer = backend.open_writer("mp")
    for offset in range(0, len(data), 3 * MIB):  # chunks that do not line up with parts
        writer.write(data[offset : offset + 3 * MIB])
    stored = writer.commit(sha(data))
    parts = [data[i : i + 5 * MIB] for i in range(0, len(data), 5 * MIB)]
    expected_parts = [base64.b64encode(hashlib.sha256(p).digest()).decode() for p in parts]
    assert stored.checksum_detail["parts"] == expected_parts
    composite = composite_sha256([hashlib.sha256(p).digest() for p in parts])
    assert stored.checksum_detail["checksum"] == composite
    assert backend.server_checksum("mp", stored.version_id) == composite


def test_wrong_expected_digest_publishes_nothing(make_backend: Any, site_a: WeedServer) -> None:
    backend = make_backend(site_a, part_size_mib=5)
    for name, size in (("small", 1000), ("large", 11 * MIB)):
        writer = backend.open_writer(name)
        writer.write(os.urandom(size))
        with pytest.raises(VerificationFailed):
            writer.commit("0" * 64)
        assert backend.stat(name) is None
    if make_backend.kind == "s3":
        uploads = site_a.client().list_multipart_uploads(  # type: ignore[attr-defined]
            Bucket=backend.options.bucket, Prefix=backend.options.prefix
        )
        assert not uploads.get("Uploads")


def test_abort_leaves_nothing(make_backend: Any, site_a: WeedServer) -> None:
    backend = make_backend(site_a, part_size_mib=5)
    writer = backend.open_writer("aborted")
    for _ in range(12):
        writer.write(os.urandom(MIB))
    writer.abort()
    writer.abort()  # idempotent
    assert backend.stat("aborted") is None
    if make_backend.kind == "s3":
        uploads = site_a.client().list_multipart_uploads(  # type: ignore[attr-defined]
            Bucket=backend.options.bucket, Prefix=backend.options.prefix
        )
        assert not uploads.get("Uploads")


def test_object_lock_compliance_refuses_deletion(make_backend: Any, site_b: WeedServer) -> None:
    locked = make_backend(site_b, lock_bucket=True, object_lock="COMPLIANCE", retention_days=1, part_size_mib=5)
    bucket = locked.options.bucket
    assert locked.health() is None
    small = locked.put_bytes("locked/small", b"retained evidence")
    large, _ = write_stream(locked, "locked/large", 6)
    for stored in (small, large):
        retention = site_b.client().get_object_retention(  # type: ignore[attr-defined]
            Bucket=bucket, Key=locked.key(stored.name), VersionId=stored.version_id
        )["Retention"]
        assert retention["Mode"] == "COMPLIANCE"
        with pytest.raises(RetentionRefused):
            locked.delete(stored.name, stored.version_id)
        assert locked.sha256_of(stored.name, stored.version_id)[0] == stored.sha256


def test_object_lock_needs_a_lock_bucket(make_backend: Any, site_b: WeedServer) -> None:
    backend = make_backend(site_b, object_lock="COMPLIANCE", retention_days=1)
    assert "no Object Lock" in (backend.health() or "")


def test_sse_c_round_trip(make_backend: Any, site_b: WeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from storage.s3_common import env_prefix

    key = os.urandom(32)
    # the key must be in the environment before the backend is built
    plain = make_backend(site_b)
    bucket = plain.options.bucket
    name = plain.name + "-ssec"
    monkeypatch.setenv(env_prefix(name) + "SSE_C_KEY", base64.b64encode(key).decode())
    monkeypatch.setenv(env_prefix(name) + "ACCESS_KEY", site_b.access_key)
    monkeypatch.setenv(env_prefix(name) + "SECRET_KEY", site_b.secret_key)
    from archive.config import StorageSpec
    from storage.registry import build_backend
    from storage.secrets import Secrets

    spec = StorageSpec(name, plain.kind, {"endpoint": site_b.endpoint, "bucket": bucket, "sse": "sse-c",
                                          "part_size_mib": 5, "prefix": plain.options.prefix})
    encrypted = build_backend(spec, site_b.root, Secrets(site_b.root / "no-secrets.toml"))
    small = encrypted.put_bytes("secret/small", b"only with the key")
    large, digest = write_stream(encrypted, "secret/large", 7)
    assert encrypted.sha256_of("secret/small", small.version_id)[0] == small.sha256
    assert encrypted.sha256_of("secret/large", large.version_id) == (digest, 7 * MIB)
    with pytest.raises(StorageError):  # without the key the server will not hand the bytes out
        plain.sha256_of("secret/small", small.version_id)


def test_wrong_credentials_fail_clearly_and_fast(make_backend: Any, site_a: WeedServer) -> None:
    bucket = site_a.shared_bucket()
    proxy = SlowProxy(site_a.s3_port, delay=0)
    wrong_secret = "not-the-secret-" + os.urandom(4).hex()
    try:
        backend = make_backend(site_a, bucket=bucket, secret=wrong_secret, endpoint=proxy.endpoint)
        started = time.monotonic()
        reason = backend.health()
        assert reason is not None and ("refused the credentials" in reason or "access denied" in reason)
        assert "_SECRET_KEY" in (reason or "")
        with pytest.raises(AuthFailed) as failure:
            backend.put_bytes("x", b"data")
        assert wrong_secret not in str(failure.value) and wrong_secret not in (reason or "")
        assert time.monotonic() - started < 5
        assert proxy.requests <= 4, f"{proxy.requests} requests: a retry storm"
    finally:
        proxy.close()


def test_missing_bucket_is_named(make_backend: Any, site_a: WeedServer) -> None:
    backend = make_backend(site_a, bucket="no-such-bucket-here")
    assert "bucket does not exist" in (backend.health() or "")
    with pytest.raises(BucketMissing, match="no-such-bucket-here"):
        backend.put_bytes("x", b"data")
    with pytest.raises(BucketMissing):
        backend.stat("x")


def test_slow_server_times_out_in_bounded_time(make_backend: Any, site_a: WeedServer) -> None:
    bucket = site_a.shared_bucket()
    proxy = SlowProxy(site_a.s3_port, delay=30)
    try:
        backend = make_backend(
            site_a, bucket=bucket, endpoint=proxy.endpoint, connect_timeout=1, read_timeout=1, max_attempts=2
        )
        started = time.monotonic()
        assert "in time" in (backend.health() or "")
        assert time.monotonic() - started < 4
        started = time.monotonic()
        with pytest.raises(Unreachable, match="in time"):
            backend.put_bytes("slow", b"data")
        elapsed = time.monotonic() - started
        assert elapsed < 8, f"took {elapsed:.1f} s"
    finally:
        proxy.close()


def test_stopped_server_fails_fast_and_recovers(make_backend: Any, site_b: WeedServer) -> None:
    if make_backend.kind != "s3":
        pytest.skip("one driver is enough to prove the stop/start helpers")
    backend = make_backend(site_b, connect_timeout=1, read_timeout=5, max_attempts=2)
    stored = backend.put_bytes("before", b"kept across a restart")
    site_b.stop()
    started = time.monotonic()
    assert backend.health() is not None
    with pytest.raises(Unreachable):
        backend.put_bytes("during", b"x")
    assert time.monotonic() - started < 10
    site_b.start()
    assert backend.health() is None
    assert backend.sha256_of("before", stored.version_id)[0] == stored.sha256


def test_a_bucket_marker_is_written_once_and_enforced(make_backend: Any, site_a: WeedServer) -> None:
    from storage.base import MARKER_NAME, Marker, MarkerExists, SiteUnavailable
    from storage.markers import ForeignMarker, ensure_marker
    from storage.s3_common import NameTaken

    backend = make_backend(site_a)
    assert backend.read_marker() is None
    marker = ensure_marker(backend, "archive-1")
    assert backend.read_marker() == marker and backend.health() is None
    with pytest.raises(MarkerExists):
        backend.write_marker(Marker("archive-2", backend.name, marker.created_at))
    if backend.kind == "s3":  # the write itself is conditional, not only the check before it
        with pytest.raises(NameTaken):
            backend._put_marker(b"{}")
    with pytest.raises(ForeignMarker):
        ensure_marker(backend, "archive-2")
    backend.put_bytes("items/one", b"evidence")
    assert [o.name for o in backend.list("")] == ["items/one"]  # the marker is not an object

    key = backend.options.prefix + MARKER_NAME
    site_a.client().delete_object(Bucket=backend.options.bucket, Key=key)  # type: ignore[attr-defined]
    assert backend.health() == f"unavailable: marker {MARKER_NAME} missing \u2014 is this the right bucket and prefix?"
    backend._marker_ok_until = 0.0  # a write trusts a good marker for MARKER_TTL seconds
    with pytest.raises(SiteUnavailable):
        backend.put_bytes("items/two", b"evidence")
    assert backend.stat("items/two") is None

    backend.write_marker(marker)  # restored (over the delete marker of a versioned bucket)
    assert backend.read_marker() == marker and backend.health() is None
    assert backend.put_bytes("items/two", b"evidence").size == 8
