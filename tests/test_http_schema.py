"""The API against its own OpenAPI document (schemathesis): no 5xx, no answer the document does not describe.

Run as a custodian (every route admits it except where the matrix says
otherwise), with a few examples per operation so the suite stays fast. Left
out, because an OpenAPI document cannot describe them and schemathesis
cannot drive them: the tus protocol at /v1/uploads (a header-driven state
machine: tuspy drives it in tests/test_tus_interop.py), WebDAV under /dav/
(rclone drives it in tests/test_dav.py) and the original's byte stream
(/v1/items/{item_id}/original, an *access* event per call: tests/test_http_items.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api_support import bearer, make_home, token_for

EXCLUDED = r"^/(v1/uploads|dav/|v1/items/\{item_id\}/original)"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _world() -> tuple[Any, str, Path]:
    """One archive and app for the module (schemathesis needs the app when the module is imported)."""
    import tempfile

    from api.http.app import create_app

    tmp = Path(tempfile.mkdtemp(prefix="evidence-schema-"))
    home = make_home(tmp / "home")
    token = token_for(home, "schema-custodian", "custodian")
    return create_app(str(home), worker=False), token, tmp


APP, TOKEN, TMP = _world()
# The examples and fuzzing phases only: the coverage phase's boundary cases, multiplied by every operation,
# would take minutes; the hostile-input tests (tests/test_tus_hostile.py, the records tests) go there instead.
CONFIG = SchemathesisConfig.from_dict({"phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}}})
schema = schemathesis.openapi.from_asgi("/openapi.json", APP, config=CONFIG).exclude(path_regex=EXCLUDED)


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    import shutil

    APP.state.runtime.close()
    shutil.rmtree(TMP, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_to_its_schema(case: Any) -> None:
    case.call_and_validate(headers=bearer(TOKEN), checks=CHECKS)
