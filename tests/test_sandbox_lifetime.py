"""A sandbox child never outlives the process that started it, even one killed with SIGKILL mid-task."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PARENT = """
import sys, threading, time
from ingest import sandbox

limits = sandbox.Limits(memory=1024 * 1024 * 1024, cpu_seconds=60, wall_seconds=60)
threading.Thread(target=sandbox.run, args=("metadata", b"JUNK HANGMARK JUNK", {}, limits), daemon=True).start()
time.sleep(4)  # the child is up and stuck on the file
import os
kids = []
for task in os.listdir(f"/proc/{os.getpid()}/task"):
    with open(f"/proc/{os.getpid()}/task/{task}/children") as f:
        kids += f.read().split()
print(" ".join(kids), flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_child_stuck_on_a_file_dies_with_its_killed_parent() -> None:
    env = {**os.environ, "EVIDENCE_SANDBOX_TEST_FAULT": "hang:HANGMARK"}
    root = Path(__file__).resolve().parents[1]
    parent = subprocess.Popen([sys.executable, "-c", PARENT], env=env, cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        kids = [int(pid) for pid in parent.stdout.readline().split()]
        assert kids and all(_alive(pid) for pid in kids)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(pid) for pid in kids):
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in kids), "a sandbox child outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            for child in map(int, f.read().split()):
                found += [child, *_descendants(child)]
    return found


def test_a_killed_batch_leaves_no_worker_or_sandbox_process_behind(tmp_path: Path, corpus: Path) -> None:
    """`ingest --workers 2` killed with SIGKILL: its pool workers must not go on ingesting unreported files."""
    home = tmp_path / "home"
    env = {**os.environ, "EVIDENCE_SANDBOX_TEST_FAULT": "hang:HANGMARK"}
    subprocess.run([sys.executable, "-m", "api.cli", "--home", str(home), "init"], env=env, check=True,
                   capture_output=True, cwd=Path(__file__).resolve().parents[1])
    folder = tmp_path / "batch"
    folder.mkdir()
    photo = (corpus / "media" / "jpg" / "Canon_40D.jpg").read_bytes()
    for n in range(8):
        (folder / f"{n}.jpg").write_bytes(photo[:2] + b"\xff\xfe\x00\x0bHANGMARK" + bytes([n]) + photo[2:])
    batch = subprocess.Popen([sys.executable, "-m", "api.cli", "--home", str(home), "ingest", str(folder),
                              "--workers", "2"], env=env, cwd=Path(__file__).resolve().parents[1],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        helpers: list[int] = []
        while time.monotonic() < deadline and len(helpers) < 3:
            time.sleep(0.5)
            helpers = _descendants(batch.pid)
        assert len(helpers) >= 3  # pool workers and their sandbox children
        batch.send_signal(signal.SIGKILL)
        batch.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(pid) for pid in helpers):
            time.sleep(0.2)
        assert not [pid for pid in helpers if _alive(pid)], "processes of a killed batch live on"
    finally:
        if batch.poll() is None:
            batch.kill()
