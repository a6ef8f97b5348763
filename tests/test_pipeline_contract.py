"""The pipeline's promise: an analysis step's own bug never costs the evidence."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Cli


@pytest.mark.parametrize("step", ["identify", "metadata", "fingerprint"])
def test_a_bug_in_an_analysis_step_is_recorded_and_the_file_is_kept(
    cli: Cli, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    from ingest.pipeline import default_steps

    cls = type(next(s for s in default_steps() if s.name == step))

    def broken(self: object, ingestion: object, archive: object) -> None:
        raise KeyError("a bug in the reading code")

    monkeypatch.setattr(cls, "run", broken)
    photo = corpus / "media" / "jpg" / "Canon_40D.jpg"
    report = cli.json_lines("ingest", str(photo))[0]
    assert report["status"] == "preserved"
    shown = cli.json("show", report["id"])
    assert any(e["step"] == step and "internal error (KeyError)" in e["reason"] for e in shown["errors"])
    out = tmp_path / "out.jpg"
    cli("get", report["id"], "-o", str(out))
    assert out.read_bytes() == photo.read_bytes()
