"""Content Credentials: a signed file's manifest is kept with its validation result."""

from __future__ import annotations

import datetime
import io
import json
import sys
from pathlib import Path

import pytest

from ingest.media import extract

CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "media"


def _signed_jpeg() -> bytes:
    """Canon_40D.jpg signed with a throwaway ES256 certificate chain (root -> signer)."""
    c2pa = pytest.importorskip("c2pa")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn: str) -> x509.Name:
        org = x509.NameAttribute(NameOID.ORGANIZATION_NAME, "T")
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), org])

    now = datetime.datetime.now(datetime.UTC)
    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder().subject_name(name("Root")).issuer_name(name("Root"))
        .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder().subject_name(name("Signer")).issuer_name(root.subject)
        .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    chain = leaf.public_bytes(pem) + root.public_bytes(pem)
    key = leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(b"es256", chain, key, None))
    manifest = {
        "claim_generator_info": [{"name": "evidence-archive-test", "version": "1"}],
        "title": "test.jpg",
        "format": "image/jpeg",
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": CAPTURE}]}}
        ],
    }
    out = io.BytesIO()
    with c2pa.Builder(json.dumps(manifest)) as builder:
        builder.sign(signer, "image/jpeg", io.BytesIO((CORPUS / "jpg" / "Canon_40D.jpg").read_bytes()), out)
    return out.getvalue()


@pytest.fixture(scope="module")
def signed() -> bytes:
    return _signed_jpeg()


def test_manifest_is_kept_and_validated(signed: bytes) -> None:
    meta = extract(signed)
    assert meta.c2pa is not None
    assert meta.c2pa["raw_size"] > 0 and meta.c2pa["raw_base64"]
    store = meta.c2pa["manifest_store"]
    assert store["manifests"][store["active_manifest"]]["title"] == "test.jpg"
    assert meta.c2pa["validation"]["state"] == "Valid"  # sound, but from a signer no trust list knows
    failures = {f["code"] for f in meta.c2pa["validation"]["results"]["activeManifest"]["failure"]}
    assert failures == {"signingCredential.untrusted"}
    assert meta.normalized.make == "Canon"


def test_tampered_file_fails_validation(signed: bytes) -> None:
    tampered = bytearray(signed)
    tampered[-200] ^= 0xFF  # inside the entropy-coded picture
    meta = extract(bytes(tampered))
    assert meta.c2pa is not None and meta.c2pa["validation"]["state"] == "Invalid"
    failures = {f["code"] for f in meta.c2pa["validation"]["results"]["activeManifest"]["failure"]}
    assert "assertion.dataHash.mismatch" in failures


def test_without_the_library_the_manifest_is_kept_and_validation_is_unavailable(
    signed: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "c2pa", None)  # import c2pa now raises ImportError
    meta = extract(signed)
    assert meta.c2pa is not None and meta.c2pa["raw_base64"]
    assert meta.c2pa["validation"]["state"] == "unavailable"
    assert "not installed" in meta.c2pa["validation"]["reason"]


def test_files_without_a_manifest_have_none() -> None:
    assert extract(CORPUS / "jpg" / "Canon_40D.jpg").c2pa is None
