"""The age v1 file format (age-encryption.org/v1), X25519 recipients, streaming.

Why not pyrage: between Python file objects it runs at about 0.24 GB/s here,
while ChaCha20-Poly1305 from `cryptography` runs at about 3.7 GB/s, and ingest
must hide encryption inside one pass over the bytes. The format is small and
fully specified; the `age` command-line tool is the oracle in the tests.

Encryption needs only recipients (public keys); decryption needs an identity.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import bech32
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

INTRO = b"age-encryption.org/v1\n"
X25519_LABEL = b"age-encryption.org/v1/X25519"
CHUNK = 64 * 1024
TAG = 16
RECIPIENT_HRP = "age"
IDENTITY_HRP = "age-secret-key-"


class AgeError(Exception):
    """The file is not an age file we can open, or it has been tampered with."""


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def _unb64(text: bytes) -> bytes:
    if b"=" in text or b"\r" in text:
        raise AgeError("non-canonical base64 in header")
    try:
        data = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except ValueError as exc:
        raise AgeError("bad base64 in header") from exc
    if _b64(data) != text:
        raise AgeError("non-canonical base64 in header")
    return data


def _bech32_encode(hrp: str, data: bytes) -> str:
    words = bech32.convertbits(list(data), 8, 5)
    assert words is not None
    return bech32.bech32_encode(hrp, words)


def _bech32_decode(text: str, hrp: str) -> bytes:
    got_hrp, words = bech32.bech32_decode(text.lower() if text.isupper() else text)
    if got_hrp != hrp or words is None:
        raise AgeError(f"not an age {'identity' if 'secret' in hrp else 'recipient'}")
    data = bech32.convertbits(words, 5, 8, False)
    if data is None or len(data) != 32:
        raise AgeError("malformed age key")
    return bytes(data)


@dataclass(frozen=True)
class Recipient:
    """An X25519 public key, as `age1…`."""

    public: bytes

    @classmethod
    def parse(cls, text: str) -> Recipient:
        return cls(_bech32_decode(text.strip(), RECIPIENT_HRP))

    def __str__(self) -> str:
        return _bech32_encode(RECIPIENT_HRP, self.public)


@dataclass(frozen=True)
class Identity:
    """An X25519 private key, as `AGE-SECRET-KEY-1…`."""

    secret: bytes

    @classmethod
    def generate(cls) -> Identity:
        key = X25519PrivateKey.generate()
        return cls(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))

    @classmethod
    def parse(cls, text: str) -> Identity:
        return cls(_bech32_decode(text.strip(), IDENTITY_HRP))

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> list[Identity]:
        """Identities from an age identity file (comments and blank lines skipped)."""
        with open(path, encoding="utf-8") as stream:
            lines = [ln.strip() for ln in stream if ln.strip() and not ln.startswith("#")]
        if not lines:
            raise AgeError(f"{path}: no identity in file")
        return [cls.parse(line) for line in lines]

    @property
    def recipient(self) -> Recipient:
        key = X25519PrivateKey.from_private_bytes(self.secret)
        return Recipient(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def __str__(self) -> str:
        return _bech32_encode(IDENTITY_HRP, self.secret).upper()

    def unwrap(self, share: bytes, body: bytes) -> bytes | None:
        """The file key from an X25519 stanza, or None if it is not for us."""
        key = X25519PrivateKey.from_private_bytes(self.secret)
        shared = key.exchange(X25519PublicKey.from_public_bytes(share))
        if shared == bytes(32):
            raise AgeError("X25519 stanza with a low-order share")
        wrap_key = _hkdf(shared, share + self.recipient.public, X25519_LABEL)
        try:
            return ChaCha20Poly1305(wrap_key).decrypt(bytes(12), body, None)
        except InvalidTag:
            return None


def _stanza(recipient: Recipient, file_key: bytes) -> bytes:
    ephemeral = X25519PrivateKey.generate()
    share = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient.public))
    wrap_key = _hkdf(shared, share + recipient.public, X25519_LABEL)
    body = ChaCha20Poly1305(wrap_key).encrypt(bytes(12), file_key, None)
    return b"-> X25519 " + _b64(share) + b"\n" + _b64(body) + b"\n"


def _chunk_nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class Encryptor:
    """Streaming age encryption: feed plaintext, collect ciphertext.

    `header()` first, then `update()` for each piece of plaintext, then
    `finalize()`. A full chunk is held back until more plaintext arrives,
    because the last chunk carries the STREAM "last" flag.
    """

    def __init__(self, recipients: Iterable[Recipient]) -> None:
        recipients = list(recipients)
        if not recipients:
            raise AgeError("no recipients to encrypt to")
        file_key = os.urandom(16)
        header = INTRO + b"".join(_stanza(r, file_key) for r in recipients) + b"---"
        mac = hmac.new(_hkdf(file_key, b"", b"header"), header, hashlib.sha256).digest()
        nonce = os.urandom(16)
        self._header = header + b" " + _b64(mac) + b"\n" + nonce
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self._pending = bytearray()
        self._counter = 0
        self._done = False

    def header(self) -> bytes:
        return self._header

    def update(self, data: bytes) -> bytes:
        if self._done:
            raise AgeError("update after finalize")
        pending = self._pending
        pending += data
        # Seal every full chunk except the last one we have (it may be the final chunk).
        full = (len(pending) - 1) // CHUNK if pending else 0
        if full <= 0:
            return b""
        view = memoryview(pending)
        out = []
        encrypt = self._aead.encrypt
        for i in range(full):
            out.append(encrypt(_chunk_nonce(self._counter, False), view[i * CHUNK : (i + 1) * CHUNK], None))
            self._counter += 1
        view.release()
        del pending[: full * CHUNK]
        return b"".join(out)

    def finalize(self) -> bytes:
        if self._done:
            raise AgeError("finalize called twice")
        self._done = True
        sealed = self._aead.encrypt(_chunk_nonce(self._counter, True), bytes(self._pending), None)
        self._pending = bytearray()
        return sealed


def encrypted_size(plain_size: int, header_size: int) -> int:
    chunks = max(1, -(-plain_size // CHUNK))
    return header_size + plain_size + chunks * TAG


def _read_line(stream: BinaryIO, limit: int = 4096) -> bytes:
    line = stream.readline(limit)
    if not line.endswith(b"\n"):
        raise AgeError("truncated or oversized age header")
    return line[:-1]


def _parse_header(stream: BinaryIO, identities: list[Identity]) -> bytes:
    """Read the header, find a stanza one of `identities` opens, check the MAC."""
    raw = bytearray()
    intro = stream.readline(64)
    if intro != INTRO:
        raise AgeError("not an age v1 file")
    raw += intro
    file_key = None
    while True:
        line = _read_line(stream)
        if line.startswith(b"---"):
            if not line.startswith(b"--- "):
                raise AgeError("malformed header MAC line")
            raw += b"---"
            mac = _unb64(line[4:])
            break
        if not line.startswith(b"-> "):
            raise AgeError("malformed header stanza")
        raw += line + b"\n"
        args = line[3:].split(b" ")
        body = bytearray()
        while True:
            body_line = _read_line(stream)
            raw += body_line + b"\n"
            if len(body_line) > 64:
                raise AgeError("header stanza line too long")
            body += _unb64(body_line)
            if len(body_line) < 64:
                break
        if file_key is None and args[0] == b"X25519" and len(args) == 2:
            share = _unb64(args[1])
            if len(share) != 32 or len(body) != 32:
                raise AgeError("malformed X25519 stanza")
            for identity in identities:
                file_key = identity.unwrap(share, bytes(body))
                if file_key is not None:
                    break
    if file_key is None:
        raise AgeError("no identity matches any recipient of this file")
    expected = hmac.new(_hkdf(file_key, b"", b"header"), bytes(raw), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, mac):
        raise AgeError("header MAC does not match: the file was altered")
    return file_key


def decrypt_stream(stream: BinaryIO, identities: list[Identity]) -> Iterator[bytes]:
    """Plaintext chunks of an age file; raises `AgeError` on any tampering."""
    file_key = _parse_header(stream, identities)
    nonce = stream.read(16)
    if len(nonce) != 16:
        raise AgeError("truncated age payload")
    aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
    counter = 0
    current = stream.read(CHUNK + TAG)
    while True:
        following = stream.read(CHUNK + TAG) if len(current) == CHUNK + TAG else b""
        last = not following
        if len(current) < TAG or (counter > 0 and len(current) == TAG):
            raise AgeError("truncated age payload")
        try:
            plain = aead.decrypt(_chunk_nonce(counter, last), current, None)
        except InvalidTag as exc:
            raise AgeError(f"payload chunk {counter} failed authentication") from exc
        yield plain
        if last:
            return
        counter += 1
        current = following


def encrypt_bytes(data: bytes, recipients: Iterable[Recipient]) -> bytes:
    enc = Encryptor(recipients)
    return enc.header() + enc.update(data) + enc.finalize()


def decrypt_bytes(data: bytes, identities: list[Identity]) -> bytes:
    import io

    return b"".join(decrypt_stream(io.BytesIO(data), identities))
