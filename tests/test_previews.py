"""Previews, attacked: metadata that must not survive, keys that must not open them, witnesses whose items must
show none, hostile files that must cost no evidence and no unbounded time, and page views that must be logged once.

Oracles: the `age` CLI (which identity opens the catalog's ciphertext) and exiftool (what the decrypted JPEG
still says). The photo used carries GPS, a camera make and model and dates (checked first, so the test means
something).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli

GPS_PHOTO = "media/jpg/gps/DSCN0010.jpg"
VIDEO = "media/video/phone_gradients.mp4"
HEIC = "media/heic/mobile/HMD_Nokia_8.3_5G.heif"
UPRIGHT, TURNED = "media/jpg/orientation/landscape_1.jpg", "media/jpg/orientation/landscape_6.jpg"
PASSPHRASE = "amber-heron-lattice-quay"
LEAKS = ("GPS", "Make", "Model", "DateTime", "CreateDate", "ICC", "XMP", "Comment", "Orientation", "Software",
         "Serial", "ThumbnailImage", "Location")


@pytest.fixture()
def cli(tmp_path: Path) -> Cli:
    runner = Cli(tmp_path / "home")
    runner("init", "--operator", "tester")
    return runner


@pytest.fixture()
def archive(cli: Cli) -> Iterator[Any]:
    from archive.context import Archive

    opened = Archive.open(cli.home, as_name="tester")
    try:
        yield opened
    finally:
        opened.close()


def _ingest(cli: Cli, *paths: Path) -> dict[str, dict[str, Any]]:
    reports = cli.json_lines("ingest", *map(str, paths))
    return {Path(r["path"]).name: r for r in reports}


def _row(archive: Any, item_id: str) -> Any:
    from sqlmodel import Session

    from archive.catalog.web import Preview

    with Session(archive.engine) as session:
        return session.get(Preview, item_id)


def _exif(path: Path) -> dict[str, Any]:
    out = subprocess.run(["exiftool", "-j", "-a", "-G1", "-n", str(path)], capture_output=True, check=True)
    return dict(json.loads(out.stdout)[0])


def _age_decrypt(sealed: bytes, identity: Path, tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    blob = tmp_path / "preview.age"
    blob.write_bytes(sealed)
    return subprocess.run(["age", "-d", "-i", str(identity), str(blob)], capture_output=True)


def _events(archive: Any, event_type: str) -> list[Any]:
    from sqlmodel import Session, col, select

    from archive.catalog.events import Event

    with Session(archive.engine) as session:
        return list(session.exec(select(Event).where(Event.event_type == event_type).order_by(col(Event.seq))).all())


def _leaks(tags: dict[str, Any]) -> list[str]:
    """Tags beyond what any JPEG's bytes and file system give (and any naming a place, device or date)."""
    return [k for k in tags if k != "SourceFile" and (
        k.split(":", 1)[0] not in ("System", "File", "JFIF", "Composite", "ExifTool") or any(w in k for w in LEAKS))]


# --- what a preview is, and what opens it -----------------------------------------------------------------

def test_a_photo_preview_is_small_stripped_and_opens_only_with_the_preview_identity(
        cli: Cli, archive: Any, corpus: Path, tmp_path: Path) -> None:
    from archive.roles import Role
    from archive.services.errors import Forbidden
    from archive.services.previews import preview_for

    photo = corpus / GPS_PHOTO
    original = _exif(photo)
    assert any("GPSLatitude" in k for k in original) and any(k.endswith(":Make") for k in original)  # a real oracle
    item = _ingest(cli, photo)[photo.name]
    assert item["status"] == "preserved"
    row = _row(archive, item["id"])
    assert row.kind == "thumbnail" and row.media_type == "image/jpeg" and max(row.width, row.height) == 320
    assert not row.sealed.startswith(b"\xff\xd8") and row.sealed.startswith(b"age-encryption.org/v1")

    keys = cli.home / "keys"
    opened = _age_decrypt(row.sealed, keys / "preview.key", tmp_path)
    assert opened.returncode == 0 and opened.stdout.startswith(b"\xff\xd8")
    for other in ("access.key", "custodian.key"):  # the keys that open originals do not open previews
        refused = _age_decrypt(row.sealed, keys / other, tmp_path)
        assert refused.returncode != 0 and not refused.stdout

    jpeg, media_type = preview_for(archive, item["id"], role=Role.INVESTIGATOR)
    assert jpeg == opened.stdout and media_type == "image/jpeg"
    assert preview_for(archive, item["id"], role=Role.CUSTODIAN)[0] == jpeg
    shown = tmp_path / "shown.jpg"
    shown.write_bytes(jpeg)
    tags = _exif(shown)
    assert tags["File:ImageWidth"] == 320 and tags["File:ImageHeight"] == 240
    assert _leaks(tags) == [], _leaks(tags)  # no GPS, make, model, dates, profile, XMP, comment

    # Nothing plaintext at rest: no stretch of the JPEG's bytes in any file of the home (catalog included).
    probes = [jpeg[i:i + 48] for i in range(600, len(jpeg) - 48, max(1, len(jpeg) // 8))]
    for path in cli.home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(p in data for p in probes), f"preview plaintext found in {path}"

    for role in (Role.AUDITOR, Role.CONTRIBUTOR):
        with pytest.raises(Forbidden):
            preview_for(archive, item["id"], role=role)


def test_orientation_heic_and_a_video_poster(cli: Cli, archive: Any, corpus: Path, tmp_path: Path) -> None:
    import io

    from PIL import Image, ImageChops, ImageStat

    from archive.roles import Role
    from archive.services.previews import preview_for

    files = [corpus / p for p in (UPRIGHT, TURNED, HEIC, VIDEO)]
    items = _ingest(cli, *files)
    pictures = {name: Image.open(io.BytesIO(preview_for(archive, r["id"], role=Role.INVESTIGATOR)[0]))
                for name, r in items.items()}
    upright, turned = pictures[files[0].name], pictures[files[1].name]
    assert upright.size == turned.size == (320, 240)  # landscape_6 is stored on its side: shown upright
    diff = ImageStat.Stat(ImageChops.difference(upright.convert("L"), turned.convert("L"))).mean[0]
    assert diff < 12, diff  # the same picture, not a rotated one
    assert pictures[files[2].name].size == (240, 320)  # the HEIC, portrait
    poster_row = _row(archive, items[files[3].name]["id"])
    assert poster_row.kind == "poster" and max(poster_row.width, poster_row.height) == 320
    poster = tmp_path / "poster.jpg"
    poster.write_bytes(preview_for(archive, items[files[3].name]["id"], role=Role.CUSTODIAN)[0])
    video_tags = _exif(corpus / VIDEO)
    assert any("GPS" in k or "Location" in k or "CreateDate" in k for k in video_tags)  # the source says where/when
    assert _leaks(_exif(poster)) == []
    for name in (files[2].name,):
        heic = tmp_path / "heic.jpg"
        heic.write_bytes(preview_for(archive, items[name]["id"], role=Role.CUSTODIAN)[0])
        assert _leaks(_exif(heic)) == []


def test_hostile_files_get_no_preview_are_kept_and_cost_bounded_time(
        cli: Cli, archive: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlmodel import Session

    from archive.roles import Role
    from archive.services.errors import NotFound
    from archive.services.previews import missing_previews, preview_for
    from ingest import sandbox
    from tests import hostile_files, hostile_media

    made = {"bomb.png": hostile_files.png_bomb(), "huge.jpg": hostile_media.huge_jpeg(),
            "empty.mp4": hostile_media.zero_length_video(),
            "broken.jpg": b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(range(256)) * 40,
            "hang.jpg": hostile_files.jpeg_with_app1(b"PREVIEW-HANG-MARKER")}
    for name, data in made.items():
        (tmp_path / name).write_bytes(data)
    monkeypatch.setenv(sandbox.FAULT_ENV, "hang@preview:PREVIEW-HANG-MARKER")
    sandbox.shutdown()  # children read the fault hook when they start
    try:
        started = time.monotonic()
        items = _ingest(cli, *(tmp_path / name for name in made))
        spent = time.monotonic() - started
    finally:
        monkeypatch.delenv(sandbox.FAULT_ENV)
        sandbox.shutdown()
    assert spent < 60, spent  # the hang is stopped at the step's limit (5 s), the bombs refused at once
    for name, report in items.items():
        assert report["status"] == "preserved", (name, report)  # the evidence is kept
        row = _row(archive, report["id"])
        if name == "hang.jpg":  # a decoder stopped: no row, so a back-fill tries again (with more time)
            assert row is None
        else:  # the file yields none: marked, never tried again unless asked
            assert row is not None and row.kind == "none" and row.sealed == b"", name
        with pytest.raises(NotFound):
            preview_for(archive, report["id"], role=Role.CUSTODIAN)
    with Session(archive.engine) as session:
        assert [i for i, _ in missing_previews(session)] == [items["hang.jpg"]["id"]]
    shown = cli.json("show", items["hang.jpg"]["id"])
    reasons = [e["reason"] for e in shown.get("errors", []) if e.get("step") == "preview"]
    assert reasons and "time limit" in reasons[0], shown.get("errors")
    bomb = cli.json("show", items["bomb.png"]["id"])
    assert any(e.get("step") == "preview" and "bomb" in e["reason"] for e in bomb.get("errors", [])), bomb


# --- witnesses --------------------------------------------------------------------------------------------

def test_no_preview_for_an_item_linked_to_a_witness_interview(cli: Cli, archive: Any, corpus: Path) -> None:
    from archive.roles import Role
    from archive.services.errors import NotFound
    from archive.services.links import link, unlink
    from archive.services.previews import backfill_previews, preview_for
    from archive.services.sources import add_interview, add_source

    first, second = corpus / GPS_PHOTO, corpus / "media/jpg/gps/DSCN0012.jpg"
    items = _ingest(cli, first, second)
    linked_first, later = items[first.name]["id"], items[second.name]["id"]
    add_source(archive, {"ref": "W-1", "kind": "eyewitness", "alias": "Nightjar"}, role=Role.INVESTIGATOR)
    add_interview(archive, "W-1", "2023-04-01", True, True, role=Role.INVESTIGATOR)
    assert preview_for(archive, linked_first, role=Role.INVESTIGATOR)[0]

    link(archive, "W-1", linked_first, role=Role.INVESTIGATOR)  # the interviewed witness's item
    assert _row(archive, linked_first) is None  # deleted with the link, in its transaction
    with pytest.raises(NotFound):
        preview_for(archive, linked_first, role=Role.CUSTODIAN)

    # Linked first, interviewed afterwards: the interview drops it.
    add_source(archive, {"ref": "W-2", "kind": "survivor"}, role=Role.INVESTIGATOR)
    link(archive, "W-2", later, role=Role.INVESTIGATOR)
    assert _row(archive, later) is not None  # no interview yet: a source alone is no witness's interview
    add_interview(archive, "W-2", "2023-05-01", True, True, role=Role.CUSTODIAN)
    assert _row(archive, later) is None

    assert backfill_previews(archive, 10, retry=True).made == 0  # a back-fill never makes one again
    assert _row(archive, linked_first) is None and _row(archive, later) is None
    handed = corpus / "media/jpg/gps/DSCN0021.jpg"  # handed over by the interviewed witness: none from the start
    report = cli.json_lines("ingest", str(handed), "--source-record", "W-1")[0]
    assert report["status"] == "preserved" and _row(archive, report["id"]) is None
    with pytest.raises(NotFound):
        preview_for(archive, report["id"], role=Role.CUSTODIAN)
    # Its provenance changed afterwards to the interviewed witness: the preview goes with the change.
    from archive.services.sources import set_provenance

    afterwards = corpus / "media/jpg/gps/DSCN0025.jpg"
    moved = cli.json_lines("ingest", str(afterwards))[0]["id"]
    assert _row(archive, moved) is not None
    set_provenance(archive, moved, role=Role.INVESTIGATOR, source="W-2", reason="the witness sent it")
    assert _row(archive, moved) is None
    unlink(archive, "W-1", linked_first, role=Role.CUSTODIAN)
    assert backfill_previews(archive, 10).made == 1  # no longer linked: shown again
    assert preview_for(archive, linked_first, role=Role.INVESTIGATOR)[0]


# --- page views and tokens --------------------------------------------------------------------------------

def test_one_access_event_per_page_view_and_tokens_bound_to_it(cli: Cli, archive: Any, corpus: Path,
                                                                tmp_path: Path) -> None:
    from archive.roles import Role
    from archive.services.errors import Forbidden
    from archive.services.previews import (
        check_view_token,
        new_view_id,
        record_preview_view,
        view_token,
        with_previews,
    )

    items = _ingest(cli, corpus / GPS_PHOTO, corpus / UPRIGHT)
    ids = [r["id"] for r in items.values()]
    before = len(_events(archive, "access"))
    record_preview_view(archive, [], role=Role.INVESTIGATOR, page="/items")
    assert len(_events(archive, "access")) == before  # nothing shown, nothing logged
    blob = tmp_path / "notes.bin"
    blob.write_bytes(b"no picture here " * 100)
    other = _ingest(cli, blob)["notes.bin"]["id"]
    assert with_previews(archive, [other, *ids]) == ids
    record_preview_view(archive, [other], role=Role.INVESTIGATOR, page="/items")
    assert len(_events(archive, "access")) == before  # no preview shown: nothing logged
    record_preview_view(archive, [*ids, other, ids[0]], role=Role.INVESTIGATOR, page="/items?q=Leila+Osman")
    events = _events(archive, "access")
    assert len(events) == before + 1
    assert events[-1].details["items"] == ids and events[-1].details["page"] == "/items"  # no search words
    assert events[-1].details["action"] == "view previews" and events[-1].item_id is None
    record_preview_view(archive, ids[:1], role=Role.CUSTODIAN, page=f"/items/{ids[0]}")
    assert _events(archive, "access")[-1].item_id == ids[0]  # an item page's view is on its timeline
    with pytest.raises(Forbidden):
        record_preview_view(archive, ids, role=Role.AUDITOR, page="/items")

    view = new_view_id()
    token = view_token(archive, "ses-aaaa", view, ids[0])
    assert check_view_token(archive, "ses-aaaa", view, ids[0], token)
    assert not check_view_token(archive, "ses-bbbb", view, ids[0], token)  # another session
    assert not check_view_token(archive, "ses-aaaa", new_view_id(), ids[0], token)  # another page view
    assert not check_view_token(archive, "ses-aaaa", view, ids[1], token)  # another item
    assert not check_view_token(archive, "ses-aaaa", view, ids[0], token[:-1] + ("0" if token[-1] != "0" else "1"))
    assert not check_view_token(archive, "ses-aaaa", view, ids[0], "")
    assert not check_view_token(archive, "ses-aaaa\x00x", view, ids[0], token)


# --- the preview identity: made, protected, unlocked -----------------------------------------------------

def test_the_preview_identity_is_wrapped_by_protect_and_opened_by_unlock(cli: Cli, corpus: Path,
                                                                         tmp_path: Path) -> None:
    from archive.context import Archive
    from archive.roles import Role
    from archive.services.errors import Locked
    from archive.services.previews import preview_for

    item = _ingest(cli, corpus / GPS_PHOTO)[Path(GPS_PHOTO).name]["id"]
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    secret.chmod(0o600)
    keys = cli.home / "keys"
    with open(cli.home / "config.toml", "a", encoding="utf-8") as stream:
        stream.write("\n[keys]\npassphrase_work_factor = 10\n")  # scrypt made cheap for a test
    cli("keys", "protect", "--passphrase-file", str(secret))
    assert not (keys / "preview.key").exists() and (keys / "preview.key.age").is_file()
    assert (keys / "preview.pub").is_file()  # new previews are still made while locked
    locked = Archive.open(cli.home, as_name="tester")
    try:
        with pytest.raises(Locked):
            locked.runtime.keys.preview_identities()
        with pytest.raises(Locked):
            preview_for(locked, item, role=Role.CUSTODIAN)
    finally:
        locked.close()
    cli("unlock", "--passphrase-file", str(secret))
    try:
        opened = Archive.open(cli.home, as_name="tester")
        try:
            assert preview_for(opened, item, role=Role.CUSTODIAN)[0].startswith(b"\xff\xd8")
        finally:
            opened.close()
    finally:
        cli("lock")


def test_add_access_makes_a_missing_preview_identity_and_backfill_fills_in(cli: Cli, archive: Any,
                                                                          corpus: Path) -> None:
    from sqlmodel import delete

    from archive.catalog.web import Preview
    from archive.db import transaction

    items = _ingest(cli, corpus / GPS_PHOTO, corpus / VIDEO)
    keys = cli.home / "keys"
    for name in ("preview.key", "preview.pub"):  # a home made before previews existed
        (keys / name).unlink()
    with transaction(archive.engine) as session:
        session.exec(delete(Preview))  # type: ignore[call-overload]
    upright = _ingest(cli, corpus / UPRIGHT)[Path(UPRIGHT).name]
    assert upright["status"] == "preserved" and _row(archive, upright["id"]) is None  # kept, no preview
    shown = cli.json("show", upright["id"])
    assert any(e.get("step") == "preview" and "add-access" in e["reason"] for e in shown.get("errors", [])), shown
    code, out, err = cli("previews", "backfill", expect=None)
    assert code != 0 and "preview identity" in out + err  # said so, nothing made
    done = cli.json("keys", "add-access")
    for name in ("access.key", "custodian.key"):  # reading originals needs an identity that opens them
        (keys / name).rename(cli.home / name)
    code, out, err = cli("previews", "backfill", expect=1)
    assert "access identity" in out + err and "internal error" not in out + err
    for name in ("access.key", "custodian.key"):
        (cli.home / name).rename(keys / name)
    assert "preview.key" in done["created"] and (keys / "preview.key").is_file()
    result = cli.json("previews", "backfill", "--limit", "2")
    assert result["made"] == 2 and result["remaining"] == 1, result
    result = cli.json("previews", "backfill")
    assert result["made"] == 1 and result["remaining"] == 0, result
    assert all(_row(archive, r["id"]).kind in ("thumbnail", "poster") for r in items.values())
    assert cli.json("previews", "backfill")["missing"] == 0  # idempotent


# --- what the step costs ------------------------------------------------------------------------------

def test_measure_the_time_the_step_adds_per_photo(cli: Cli, archive: Any, corpus: Path) -> None:
    """Not a timed assertion: prints the median cost of the preview step per photo (warm sandbox)."""
    from ingest import sandbox
    from ingest.steps.preview import make_preview

    recipient = archive.runtime.keys.preview_recipient()
    assert recipient is not None
    photos = [p for p in sorted((corpus / "media/jpg").glob("*.jpg")) if "corrupted" not in p.name][:6]
    photos.append(corpus / HEIC)
    sandbox.warm()
    costs: dict[str, float] = {}
    for photo in photos:
        data = photo.read_bytes()
        rounds = 1 if photo.suffix == ".heif" else 3  # a HEIC is decoded whole: seconds, not milliseconds
        make_preview(data, "photo", recipient)  # the child's first decode of this format
        started = time.perf_counter()
        for _ in range(rounds):
            make_preview(data, "photo", recipient)
        costs[photo.name] = (time.perf_counter() - started) / rounds
    ordered = sorted(costs.values())
    print("\npreview step per photo (ms):", {k: round(v * 1000, 1) for k, v in costs.items()},
          f"median {ordered[len(ordered) // 2] * 1000:.1f} ms")
    assert all(v > 0 for v in costs.values())
    shutil.rmtree(cli.home / "tmp", ignore_errors=True)


def test_a_decoder_crash_is_retried_by_the_backfills(cli: Cli, archive: Any, corpus: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A preview whose decoder crashed at ingest is made later: by `previews backfill`, and by an analysis job
    (the path a large upload's deferred analysis takes), which also clears the recorded crash."""
    from sqlmodel import delete

    from archive.catalog.web import Preview
    from archive.db import transaction
    from ingest import sandbox

    data = (corpus / GPS_PHOTO).read_bytes()
    crashing = tmp_path / "crashes.jpg"
    crashing.write_bytes(data[:2] + b"\xff\xfe\x00\x0eMARK-preview" + data[2:])  # a comment with the hook's marker
    monkeypatch.setenv(sandbox.FAULT_ENV, "segv@preview:MARK-preview")
    sandbox.shutdown()
    try:
        item = _ingest(cli, crashing)["crashes.jpg"]["id"]
    finally:
        monkeypatch.delenv(sandbox.FAULT_ENV)
        sandbox.shutdown()
    assert _row(archive, item) is None
    shown = cli.json("show", item)
    assert [e for e in shown["errors"] if e["step"] == "preview"] == [
        {"step": "preview", "reason": "no preview: parser crashed (SIGSEGV)"}]
    assert shown["metadata"]["make"] == "NIKON"  # the other steps were not touched by the hook

    done = cli.json("previews", "backfill")
    assert done["made"] == 1 and _row(archive, item).kind == "thumbnail"

    with transaction(archive.engine) as session:
        session.exec(delete(Preview))  # type: ignore[call-overload]
    cli("analyze", "--backfill", "--all")
    cli("worker", "--once")
    assert _row(archive, item).kind == "thumbnail"
    assert not [e for e in cli.json("show", item)["errors"] if e["step"] == "preview"]
