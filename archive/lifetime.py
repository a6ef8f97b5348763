"""Helper processes that end with the process that started them.

A parent killed with SIGKILL cannot stop its children. A batch's worker
processes would go on ingesting files nobody will hear about, and a sandbox
child stuck on a hostile file would live on holding its bytes in memory. A
thread in the child watches its parent id (a re-parented process sees
another one) and ends the process at once. `prctl(PR_SET_PDEATHSIG)` is not
used: it fires when the *thread* that started the child ends, which for a
pool can be any thread. The parent's id is handed over by the parent itself:
a child that read its own `getppid()` after the parent had already died would
watch its new parent instead, and live on.
"""

from __future__ import annotations

import os
import threading
import time

PARENT_ENV = "EVIDENCE_PARENT_PID"


def die_with_parent(parent: int | None = None, interval: float = 0.5) -> None:
    """Exit this process as soon as `parent` (the pid the parent gave, else `$EVIDENCE_PARENT_PID`,
    else ours at this moment) is no longer its parent (checked every `interval` seconds)."""
    if parent is None:
        given = os.environ.get(PARENT_ENV, "")
        parent = int(given) if given.isdigit() else os.getppid()
    if os.getppid() != parent:
        os._exit(1)  # gone before we started watching

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
