"""Helper processes that end with the process that started them.

A parent killed with SIGKILL cannot stop its children. A batch's worker
processes would go on ingesting files nobody will hear about, and a sandbox
child stuck on a hostile file would live on holding its bytes in memory. A
thread in the child watches its parent id (a re-parented process sees
another one) and ends the process at once. `prctl(PR_SET_PDEATHSIG)` is not
used: it fires when the *thread* that started the child ends, which for a
pool can be any thread.
"""

from __future__ import annotations

import os
import threading
import time


def die_with_parent(interval: float = 0.5) -> None:
    """Exit this process as soon as its parent is gone (checked every `interval` seconds)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
