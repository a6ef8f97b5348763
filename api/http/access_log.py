"""Server logs without secrets: every line passes `redact` before it is written.

An upload URL carries the secret its partial upload is encrypted under; a
WebDAV path carries the file names a contributor chose; a query string may
carry a searched name. None of them, no header, and by default no client
address reaches the log.
"""

from __future__ import annotations

import logging
import re

# Whatever the spelling (`/V1//Uploads/ID/SECRET`, `/v1/receipts/ID/SECRET`, `%2F`, `\\`, `/v1/upload.`):
# nothing after the resource's name, not even the upload id (the log needs neither).
_UPLOAD = re.compile(r"(?i)(/+v1/+(?:uploads?|receipts?))[^?#\s\"]*")
_DAV = re.compile(r"(?i)(/+dav/)[^\s\"]*")
_QUERY = re.compile(r"(/[^\s\"?]*)\?[^\s\"]*")
_AUTH = re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(bearer|basic)?\s*[^\s\"',}]+")


def redact(text: str) -> str:
    """A log line without upload secrets, WebDAV names, query strings or credentials."""
    text = _UPLOAD.sub(r"\1/…", text)
    text = _DAV.sub(r"\1…", text)
    text = _QUERY.sub(r"\1?…", text)
    return _AUTH.sub(r"\1\2 …", text)


class RedactFilter(logging.Filter):
    """Rewrites every record's message through `redact` (installed on the handler: every logger passes it).

    The access log's client address is dropped too (unless `[api]
    log_client_addresses`): a contributor's address is exactly what a
    seized server's logs must not give away.
    """

    def __init__(self, client_addresses: bool = False) -> None:
        super().__init__()
        self.client_addresses = client_addresses

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access" and not self.client_addresses and isinstance(record.args, tuple) \
                and record.args:
            record.args = ("-", *record.args[1:])
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record: keep it as it is, unformatted
            return True
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


def configure_logging(verbose: bool, client_addresses: bool = False) -> logging.Handler:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(RedactFilter(client_addresses))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
        logger.setLevel(logging.INFO)
    logging.getLogger("archive").setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("api").setLevel(logging.INFO)
    return handler
