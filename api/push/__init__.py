"""The field client behind `evidence push`: a local queue, a tus client and receipt checks.

Small modules, each for one thing: `queue` (what is still to send, kept on the
device across restarts), `tus` (the resumable upload protocol over httpx),
`receipts` (the archive's receipt key, pinned on first use, and each receipt's
check), `drain` (sending the queue in order). `api/cli/push.py` only parses
arguments and prints.
"""
