"""The production tree, tiles, proofs and signed notes against the independent reference and known vectors."""

from __future__ import annotations

import hashlib
import random
import stat
from pathlib import Path

import pytest
from test_custody_rfc import (
    CT_LEAVES,
    CT_ROOTS,
    ref_leaf,
    ref_mth,
    ref_open_checkpoint,
    ref_path,
    ref_proof,
    ref_verify_consistency,
    ref_verify_inclusion,
)

from archive.custody.checkpoint import Signer, checkpoint_body, ensure_log_key
from archive.custody.entry import canonical, entry_fields
from archive.custody.merkle import MemoryTree, ProofError, consistency_proof, inclusion_proof
from archive.custody.verify import (
    NoteError,
    ProofFailed,
    Verifier,
    open_note,
    parse_checkpoint,
    verify_consistency,
    verify_inclusion,
)


def leaves_of(n: int) -> list[bytes]:
    return [ref_leaf(i.to_bytes(4, "big")) for i in range(n)]


def test_roots_match_rfc6962_vectors() -> None:
    tree = MemoryTree(b"".join(ref_leaf(bytes.fromhex(d)) for d in CT_LEAVES))
    assert [tree.root(n).hex() for n in range(1, 9)] == CT_ROOTS
    assert tree.root(0) == hashlib.sha256(b"").digest()


def test_proofs_equal_the_rfc_definitions_for_every_small_tree() -> None:
    leaves = leaves_of(70)
    tree = MemoryTree(b"".join(leaves))
    for n in range(1, 71):
        root = ref_mth(leaves[:n])
        assert tree.root(n) == root
        for m in range(n):
            proof = inclusion_proof(tree, m, n)
            assert proof == ref_path(m, leaves[:n])
            assert ref_verify_inclusion(leaves[m], m, n, proof, root)
            verify_inclusion(leaves[m], m, n, proof, root)
        for m in range(1, n):
            proof = consistency_proof(tree, m, n)
            assert proof == ref_proof(m, leaves[:n])
            assert ref_verify_consistency(m, n, ref_mth(leaves[:m]), root, proof)
            verify_consistency(m, n, ref_mth(leaves[:m]), root, proof)


def test_production_verifier_rejects_mangled_proofs() -> None:
    leaves = leaves_of(13)
    tree = MemoryTree(b"".join(leaves))
    root, old_root = tree.root(13), tree.root(6)
    proof = inclusion_proof(tree, 5, 13)
    bad = [proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]]
    for args in [(leaves[5], 5, 13, bad, root), (leaves[5], 6, 13, proof, root), (leaves[5], 5, 13, proof[:-1], root),
                 (leaves[5], 5, 13, [*proof, proof[0]], root), (leaves[5], 13, 13, proof, root)]:
        with pytest.raises(ProofFailed):
            verify_inclusion(*args)
    cproof = consistency_proof(tree, 6, 13)
    with pytest.raises(ProofFailed):
        verify_consistency(6, 13, old_root, root, cproof[:-1])
    with pytest.raises(ProofFailed):
        verify_consistency(6, 13, tree.root(5), root, cproof)
    with pytest.raises(ProofFailed):
        verify_consistency(6, 6, old_root, root, [])
    with pytest.raises(ProofError):
        inclusion_proof(tree, 13, 13)


def test_entry_encoding_is_rfc8785() -> None:
    fields = entry_fields(seq=7, occurred_at="2026-01-01T00:00:00.000000Z", actor="op", event_type="fixity check",
                          item_id=None, objects=["b", "a"], outcome="success",
                          details={"\u00e9": 1, "z": "\u2028\x01", "a": [True, None], "\U0001f600": 2, "\ue000": 3})
    assert canonical(fields) == (
        '{"actor":"op","details":{"a":[true,null],"z":"\u2028\\u0001","\u00e9":1,"\U0001f600":2,"\ue000":3},'
        '"format":"evidence-event/1","item":null,"objects":["b","a"],"outcome":"success","seq":7,'
        '"time":"2026-01-01T00:00:00.000000Z","type":"fixity check"}'
    ).encode()
    with pytest.raises(ValueError):
        canonical({**fields, "details": {"ratio": 0.5}})


GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_SIG = ("\u2014 PeterNeumann "
          "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n")


def test_signed_notes_match_the_go_reference_vector() -> None:
    signer = Signer.decode(GO_SKEY)
    assert signer.encode() == GO_SKEY
    assert signer.verifier.encode() == GO_VKEY
    assert signer.sign_note(GO_TEXT) == GO_TEXT + "\n" + GO_SIG
    assert open_note(GO_TEXT + "\n" + GO_SIG, Verifier.decode(GO_VKEY)) == GO_TEXT


def test_notes_from_other_keys_or_altered_text_are_refused() -> None:
    verifier = Verifier.decode(GO_VKEY)
    other = Signer.generate("PeterNeumann")
    witness = Signer.generate("witness.example/w1")
    cosigned = witness.sign_note(GO_TEXT) + GO_SIG  # an extra signature we do not know is ignored
    assert open_note(cosigned, verifier) == GO_TEXT
    for note in [other.sign_note(GO_TEXT), GO_TEXT.replace("problem", "Problem") + "\n" + GO_SIG, GO_TEXT,
                 GO_TEXT + "\n" + GO_SIG.replace("x08go", "x08gp")]:
        with pytest.raises(NoteError):
            open_note(note, verifier)
    for vkey in ["PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "Peter Neumann+c74f20a3+AR",
                 "PeterNeumann+c74f20a3"]:
        with pytest.raises(NoteError):
            Verifier.decode(vkey)


def test_checkpoint_body_round_trips_and_the_reference_opens_it() -> None:
    signer = Signer.generate("evidence-archive/test")
    root = hashlib.sha256(b"root").digest()
    note = signer.sign_note(checkpoint_body(signer.name, 42, root))
    body = parse_checkpoint(open_note(note, signer.verifier))
    assert (body.origin, body.tree_size, body.root_hash) == ("evidence-archive/test", 42, root)
    assert ref_open_checkpoint(note, signer.verifier.encode()) == ("evidence-archive/test", 42, root)
    for text in ["o\n042\n" + "A" * 43 + "=\n", "o\n1\nnotbase64!\n", "o\n1\n"]:
        with pytest.raises(NoteError):
            parse_checkpoint(text)


def test_log_key_is_created_once_private_and_published(tmp_path: Path) -> None:
    from archive.config import Settings, load_settings

    settings = Settings(home=tmp_path)
    settings.save()
    signer = ensure_log_key(settings)
    key_file = tmp_path / "keys" / "log-signing.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert (tmp_path / "keys" / "log.vkey").read_text().strip() == signer.verifier.encode()
    assert signer.name.startswith("evidence-archive/") and len(signer.name) > 30
    reloaded = load_settings(tmp_path)
    assert reloaded.extra["log"]["origin"] == signer.name
    assert ensure_log_key(reloaded).encode() == signer.encode()
    assert ensure_log_key(Settings(home=tmp_path / "other")).name != signer.name


def test_tiles_give_the_same_hashes_and_proofs_as_the_whole_tree(tmp_path: Path) -> None:
    from archive.custody.merkle import tree_root
    from archive.custody.tiles import TileStore
    from archive.db import make_engine, migrate, transaction

    engine = make_engine(f"sqlite:///{tmp_path / 'tiles.db'}")
    migrate(engine)
    total = 66_000  # past 65,536 leaves, so a level-2 tile exists
    all_leaves = b"".join(ref_leaf(i.to_bytes(4, "big")) for i in range(total))
    tree = MemoryTree(all_leaves)
    rng = random.Random(5)
    sizes = sorted({0, 1, 255, 256, 257, 511, 65_535, 65_536, total, *rng.sample(range(1, total), 12)})
    for old, new in zip(sizes, sizes[1:], strict=False):
        with transaction(engine) as session:
            TileStore(session).extend(old, all_leaves[old * 32 : new * 32])
        with transaction(engine) as session:
            tiles = TileStore(session)
            assert tree_root(tiles, new) == tree.root(new)
            if old:
                assert consistency_proof(tiles, old, new) == consistency_proof(tree, old, new)
            for index in {0, new - 1, rng.randrange(new)}:
                assert inclusion_proof(tiles, index, new) == inclusion_proof(tree, index, new)
    engine.dispose()
