"""A sealed value's length says almost nothing of what it holds (Padmé padding).

The attack: a sealed blob's length was its JSON's plus 28 bytes (nonce and
tag). Whoever holds a known file recomputes that JSON (its raw metadata with
the project's own extractor) and matches the length of every `item_metadata`
blob in a stolen catalog: most corpus files had a length of their own. The
same for pending rows, sealed with age by a locked process.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.conftest import Cli

OVERHEAD = 28  # the ChaCha20-Poly1305 nonce and tag


def _compact(value: object) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def test_json_of_thousands_of_lengths_seals_to_few_sizes() -> None:
    from archive.keys.catalog import PADDED_MINIMUM, CatalogKeys

    keys = CatalogKeys.generate()
    sizes: dict[int, list[int]] = {}
    for n in range(0, 6000, 3):
        fields = {"raw": "x" * n, "name": "é" * (n % 7)}  # multi-byte characters too: padding counts bytes
        _, blob = keys.seal("item_metadata", "i-1", fields)
        length = _compact(fields)
        sizes.setdefault(len(blob), []).append(length)
        assert len(blob) != length + OVERHEAD or length == len(blob) - OVERHEAD == _padme(length), n
        assert len(blob) - OVERHEAD >= max(length, PADDED_MINIMUM)
        assert len(blob) - OVERHEAD <= max(PADDED_MINIMUM, length * 1.12)  # Padmé's overhead bound
        assert keys.open("item_metadata", "i-1", 1, blob) == fields  # the padding is JSON whitespace
    assert len(sizes) <= 75, sorted(sizes)  # 2,000 lengths from 20 to about 6,030 bytes: 73 sizes
    assert len(sizes[PADDED_MINIMUM + OVERHEAD]) > 50  # every short row looks the same


def _padme(length: int) -> int:
    """Padmé as the PURBs paper defines it, written out independently of the archive's version."""
    import math

    length = max(length, 256)
    e = math.floor(math.log2(length))
    s = math.floor(math.log2(e)) + 1
    step = 2 ** (e - s)
    return math.ceil(length / step) * step


def test_padding_is_padme() -> None:
    from archive.keys.catalog import padded_length

    for length in [*range(0, 70_000, 7), 2**20 - 1, 2**20, 2**20 + 1, 10**8 + 3]:
        assert padded_length(length) == _padme(length), length


def test_a_known_files_metadata_length_matches_no_sealed_blob(cli: Cli, corpus: Path) -> None:
    """The attacker's own computation, on the corpus: exact-length matching finds nothing."""
    from archive.keys.catalog import CatalogKeys

    media = corpus / "media" / "jpg"
    files = sorted(str(p) for p in [*media.glob("*.jpg"), *media.glob("exif-org/*.jpg"), *media.glob("gps/*.jpg")])
    cli.json_lines("ingest", *files)
    keys = CatalogKeys.parse((cli.home / "keys" / "catalog.key").read_text())
    with sqlite3.connect(cli.home / "catalog.db") as db:
        rows = db.execute("SELECT item_id, key_version, sealed FROM item_metadata").fetchall()
    assert len(rows) == len(files) >= 15
    exact = set()
    for item_id, version, blob in rows:
        # What the attacker recomputes from the known file: the very fields sealed, as compact JSON.
        length = _compact(keys.open("item_metadata", item_id, version, blob))
        assert len(blob) - OVERHEAD == _padme(length), item_id
        if len(blob) == length + OVERHEAD:
            exact.add(item_id)
    assert len(exact) <= 1, exact  # only by chance, a JSON whose length is already a padded one
    assert len({len(blob) for _, _, blob in rows}) < len({_compact(keys.open("item_metadata", i, v, b))
                                                         for i, v, b in rows})


def test_pending_rows_are_padded_too(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    """A locked ingest seals with age: the plaintext inside is padded the same way, and still settles."""
    from archive.age import Identity, decrypt_bytes
    from archive.catalog.sealing import Sealer
    from archive.catalog.secrets import Pending, seal_row
    from archive.keys.catalog import PADDED_MINIMUM

    identity = Identity.generate()
    recipients = [identity.recipient]
    for seal in (Sealer(None, recipients).seal, lambda t, i, f: seal_row(Pending(recipients), t, i, f)):
        sizes = {len(seal("provenance", "p-1", {"note": "n" * n})[1]) for n in range(0, 3000, 5)}
        assert len(sizes) <= 60, sorted(sizes)  # 600 lengths up to about 3,000 bytes: 57 sizes
        short = {len(seal("users", "u-1", {"name": "x" * n})[1]) for n in range(1, 120)}
        assert len(short) == 1  # a name's length is not visible

    aside = tmp_path / "catalog.key.aside"
    (cli.home / "keys" / "catalog.key").rename(aside)  # locked: every row written is pending
    media = corpus / "media" / "jpg"
    cli("ingest", "--source", "a contributor in the field", str(media / "Canon_40D.jpg"),
        str(media / "gps/DSCN0010.jpg"))
    access = Identity.read(cli.home / "keys" / "access.key")
    with sqlite3.connect(cli.home / "catalog.db") as db:
        pending = [(table, blob) for table in ("items", "provenance", "item_metadata", "item_fingerprints")
                   for (blob,) in db.execute(f"SELECT sealed FROM {table} WHERE key_version = 0")]
    assert {table for table, _ in pending} >= {"items", "provenance", "item_metadata"}
    for table, blob in pending:
        plaintext = decrypt_bytes(bytes(blob), access)
        assert len(plaintext) == _padme(len(plaintext.rstrip(b" "))) >= PADDED_MINIMUM, table
    aside.rename(cli.home / "keys" / "catalog.key")
    listed = cli.json("list")  # unlocked: the padded pending rows settle and open
    assert len(listed) == 2 and all(item["sha256"] for item in listed)
