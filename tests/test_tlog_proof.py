"""C2SP tlog-proof: the archive's proofs verify against the log's key, and nothing else does.

Attacks: the wrong leaf, a tampered audit path, index or checkpoint, the
receipt key instead of the log key, a proof for an event no checkpoint
covers yet. Format: the spec's own example parses and re-encodes byte for
byte; a checkpoint carrying a witness's cosignature still verifies.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from archive.context import Archive
from archive.custody.entry import leaf_hash
from archive.custody.proof_format import (
    HEADER,
    TlogProof,
    TlogProofError,
    not_covered,
    parse_tlog_proof,
    tlog_proof,
    verify_tlog_proof,
)
from archive.custody.service import CustodyError, checkpoint, log_signer, prove_inclusion
from archive.custody.verify import open_note, parse_checkpoint
from tests.conftest import Cli

EVENTS = 13  # an odd size: paths of every shape (left, right, the ragged right edge)

SPEC_EXAMPLE = """c2sp.org/tlog-proof@v1
extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ
index 73894
gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=
EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=
RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=
AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=

example.com/fancylog
109482
sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=

\u2014 example.com/fancylog hI2DJw[...]1roloI=
\u2014 witness1.example mJirIklj[...]qY9v2B/5bg==
\u2014 witness2.example TnKKVHLX[...]xwYwrSjgow==
\u2014 witness3.example S4X82uH5[...]3oEcROGLFQ==
"""


@pytest.fixture()
def archive(cli: Cli) -> Iterator[Archive]:
    from archive.custody.log import append_event
    from archive.db import transaction

    opened = Archive.open(cli.home)
    have = opened.runtime.log_size()
    with transaction(opened.engine) as session:
        for n in range(have, EVENTS):
            append_event(session, "validation", actor="archive", details={"n": n})
    checkpoint(opened)
    try:
        yield opened
    finally:
        opened.close()


def _vkey(archive: Archive) -> str:
    return log_signer(archive).verifier.encode()


def _entry(archive: Archive, seq: int) -> bytes:
    return str(prove_inclusion(archive, seq)["entry"]).encode("utf-8")


def test_every_event_proves_against_the_log_key(archive: Archive) -> None:
    vkey = _vkey(archive)
    assert archive.runtime.log_size() == EVENTS
    for seq in range(EVENTS):
        text = tlog_proof(archive, seq)
        entry = _entry(archive, seq)
        for leaf in (None, entry, leaf_hash(entry)):  # from the extra line, the entry, its leaf hash
            checked = verify_tlog_proof(text, leaf, vkey)
            assert (checked.index, checked.tree_size) == (seq, EVENTS)
            assert checked.leaf_hash == leaf_hash(entry)
        assert json.loads(parse_tlog_proof(text).extra or b"")["seq"] == seq


def test_layout_is_the_specs(archive: Archive) -> None:
    text = tlog_proof(archive, 5)
    lines = text.split("\n")
    assert lines[0] == HEADER
    assert lines[1].startswith("extra ") and lines[2] == "index 5"
    blank = lines.index("")
    path = lines[3:blank]
    assert path and all(len(base64.b64decode(h, validate=True)) == 32 for h in path)
    note = "\n".join(lines[blank + 1 :])
    assert note == prove_inclusion(archive, 5)["note"]  # the checkpoint verbatim
    body = parse_checkpoint(open_note(note, log_signer(archive).verifier))
    assert body.tree_size == EVENTS and body.origin == log_signer(archive).name
    # Index 0 has no leading zero trouble, and the proof of the only child is the sibling list all the same.
    assert tlog_proof(archive, 0).split("\n")[2] == "index 0"


def test_the_specs_example_parses_and_reencodes_byte_for_byte() -> None:
    proof = parse_tlog_proof(SPEC_EXAMPLE)
    assert proof.index == 73894 and len(proof.path) == 5
    assert proof.extra is not None and proof.extra.startswith(b"age-v1.2.1-darwin-arm64.tar.gz")
    assert proof.checkpoint.startswith("example.com/fancylog\n109482\n")
    assert proof.encode() == SPEC_EXAMPLE
    without = SPEC_EXAMPLE.replace(SPEC_EXAMPLE.split("\n")[1] + "\n", "")  # extra is optional
    assert parse_tlog_proof(without).extra is None


def test_wrong_leaf_fails(archive: Archive) -> None:
    vkey = _vkey(archive)
    text = tlog_proof(archive, 3)
    with pytest.raises(TlogProofError, match="event 4"):
        verify_tlog_proof(text, _entry(archive, 4), vkey)  # another event's entry
    with pytest.raises(TlogProofError, match="wrong leaf"):
        verify_tlog_proof(text, leaf_hash(_entry(archive, 4)), vkey)
    forged = _entry(archive, 3).replace(b'"outcome":"success"', b'"outcome":"failure"')
    with pytest.raises(TlogProofError, match="wrong leaf"):
        verify_tlog_proof(text, forged, vkey)
    # The unauthenticated extra line swapped for another entry: the proof no longer leads to the root.
    proof = parse_tlog_proof(text)
    swapped = TlogProof(proof.index, proof.path, proof.checkpoint, _entry(archive, 4).replace(b'"seq":4', b'"seq":3'))
    with pytest.raises(TlogProofError, match="wrong leaf"):
        verify_tlog_proof(swapped.encode(), None, vkey)


def _flip(data: bytes, at: int = 0) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def test_tampered_proofs_fail(archive: Archive) -> None:
    vkey = _vkey(archive)
    entry = _entry(archive, 6)
    proof = parse_tlog_proof(tlog_proof(archive, 6))
    for i in range(len(proof.path)):  # each hash of the audit path
        path = list(proof.path)
        path[i] = _flip(path[i], i)
        with pytest.raises(TlogProofError, match="wrong leaf or tampered"):
            verify_tlog_proof(TlogProof(proof.index, tuple(path), proof.checkpoint, proof.extra).encode(), entry, vkey)
    for cut in (proof.path[:-1], (*proof.path, proof.path[0])):  # a hash dropped, one added
        with pytest.raises(TlogProofError):
            verify_tlog_proof(TlogProof(proof.index, cut, proof.checkpoint, proof.extra).encode(), entry, vkey)
    moved = TlogProof(7, proof.path, proof.checkpoint).encode()  # the same path claimed for another index
    with pytest.raises(TlogProofError):
        verify_tlog_proof(moved, leaf_hash(entry), vkey)
    lines = proof.checkpoint.split("\n")
    root = base64.b64encode(_flip(base64.b64decode(lines[2]))).decode()
    regrown = "\n".join([lines[0], lines[1], root, *lines[3:]])  # another root under the same signature
    with pytest.raises(TlogProofError, match="does not verify"):
        verify_tlog_proof(TlogProof(proof.index, proof.path, regrown, proof.extra).encode(), entry, vkey)


def test_only_the_logs_key_verifies(archive: Archive) -> None:
    from archive.custody.checkpoint import Signer
    from archive.custody.receipts import receipt_vkey

    text = tlog_proof(archive, 2)
    with pytest.raises(TlogProofError, match="does not verify"):
        verify_tlog_proof(text, None, receipt_vkey(archive))
    impostor = Signer.generate(log_signer(archive).name)  # same name, another key
    with pytest.raises(TlogProofError, match="no signature by"):
        verify_tlog_proof(text, None, impostor.verifier.encode())
    with pytest.raises(TlogProofError, match="not 'elsewhere"):
        verify_tlog_proof(text, None, _vkey(archive), origin="elsewhere.example/log")


def test_a_witness_cosignature_is_ignored_not_fatal(archive: Archive) -> None:
    from archive.custody.checkpoint import Signer

    proof = parse_tlog_proof(tlog_proof(archive, 9))
    witness = Signer.generate("witness.example/w1")
    body = proof.checkpoint[: proof.checkpoint.index("\n\n") + 1]
    cosigned = proof.checkpoint + witness.sign_note(body).split("\n\n", 1)[1]
    checked = verify_tlog_proof(TlogProof(proof.index, proof.path, cosigned, proof.extra).encode(), None,
                                _vkey(archive))
    assert checked.index == 9


def test_uncovered_event_is_refused_clearly(archive: Archive) -> None:
    from archive.custody.log import append_event
    from archive.db import transaction

    with transaction(archive.engine) as session:
        append_event(session, "validation", actor="archive")
    with pytest.raises(CustodyError) as raised:
        tlog_proof(archive, EVENTS)
    assert not_covered(str(raised.value)) and f"event {EVENTS}" in str(raised.value)
    with pytest.raises(CustodyError, match="no event"):
        tlog_proof(archive, EVENTS + 50)
    checkpoint(archive)
    assert verify_tlog_proof(tlog_proof(archive, EVENTS), None, _vkey(archive)).tree_size == EVENTS + 1


def test_a_contributors_proof_carries_the_leaf_hash_only(archive: Archive) -> None:
    text = tlog_proof(archive, 4, extra="leaf")
    entry = _entry(archive, 4)
    proof = parse_tlog_proof(text)
    assert proof.extra == leaf_hash(entry)
    assert b'"details"' not in base64.b64decode(text.split("\n")[1][len("extra "):])
    assert verify_tlog_proof(text, None, _vkey(archive)).entry is None
    bare = tlog_proof(archive, 4, extra="none")
    assert bare.split("\n")[1] == "index 4"
    with pytest.raises(TlogProofError, match="no leaf"):
        verify_tlog_proof(bare, None, _vkey(archive))
    assert verify_tlog_proof(bare, entry, _vkey(archive)).index == 4


@pytest.mark.parametrize("text, why", [
    ("", "no empty line"),
    ("c2sp.org/tlog-proof@v2\nindex 0\n\nx\n", "first line"),
    (f"{HEADER}\nindex 01\n\nx\n", "leading zeroes"),
    (f"{HEADER}\nindex -1\n\nx\n", "decimal"),
    (f"{HEADER}\nextra !!\nindex 0\n\nx\n", "extra line is not base64"),
    (f"{HEADER}\n\nx\n", "index"),
    (f"{HEADER}\nindex 0\nAAAA\n\nx\n", "not a SHA-256 hash"),
    (f"{HEADER}\nindex 0\n\n", "checkpoint is missing"),
])
def test_malformed_proofs_say_what_is_wrong(text: str, why: str) -> None:
    with pytest.raises(TlogProofError, match=why):
        parse_tlog_proof(text)


def test_the_verifier_matches_an_independent_rfc6962_computation(archive: Archive, tmp_path: Path) -> None:
    """Recompute the root from the audit path by RFC 6962 section 2.1.1 directly (no project code)."""

    def node(left: bytes, right: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + left + right).digest()

    def root_from(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes:
        # Walk the RFC's recursion top-down to learn each sibling's side, then fold bottom-up.
        sides = []
        start, n = 0, size
        while n > 1:
            k = 1 << ((n - 1).bit_length() - 1)
            if index - start < k:
                sides.append("right")
                n = k
            else:
                sides.append("left")
                start, n = start + k, n - k
        value = leaf
        for side, sibling in zip(reversed(sides), path, strict=True):
            value = node(value, sibling) if side == "right" else node(sibling, value)
        return value

    for seq in (0, 5, 12):
        proof = parse_tlog_proof(tlog_proof(archive, seq))
        lines = proof.checkpoint.split("\n")
        expected = base64.b64decode(lines[2])
        leaf = hashlib.sha256(b"\x00" + _entry(archive, seq)).digest()
        assert root_from(seq, int(lines[1]), leaf, list(proof.path)) == expected
