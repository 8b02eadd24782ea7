"""Schemathesis fuzzes every operation of ``/api`` against the app over a real build.

The OpenAPI document the app serves is loaded in-process (ASGI, no network) and every
operation runs through schemathesis' examples, coverage and fuzzing phases, in positive and
negative modes, with every check enabled (the ``--checks all`` of its command line): the server
must accept what the document allows, refuse what it does not with a declared status and the
declared error schema, and answer with the declared media types and schemas.

The run is bounded and deterministic: ``MAX_EXAMPLES`` examples per operation and phase,
derandomised, no example database. The stateful phase does not apply (the document declares no
OpenAPI links: every operation is a read), and schemathesis skips it by itself.

Two rules of the ``bbox`` and ``datetime`` parameters cannot be written in OpenAPI 3.0 and are
stated in their descriptions instead (south latitude not above north latitude; an interval
not ending before it starts). Positive cases breaking them are left out by a ``filter_case``
hook, the schemathesis way to teach the generator a documented constraint; no check is
disabled, and the server's 400 for such values is tested in ``tests/routes/test_items.py``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis import Case
from schemathesis.specs.openapi.schemas import OpenApiSchema

from api.main import create_app
from api.settings import Settings

#: Examples per operation and phase: enough to cover every parameter, small enough that the
#: whole run takes well under a minute on two cores.
MAX_EXAMPLES = 25


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    # schemathesis' ``from_fixture`` reads ``node._nodeid``, which pytest 9.2 no longer has
    # (pytest keeps the id elsewhere); give it the attribute it reads. Harmless on earlier
    # pytest versions, where the attribute exists.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


def _violates_documented_constraints(query: dict[str, Any] | None) -> bool:
    """Whether a query breaks a rule the document states in words only.

    OpenAPI 3.0 cannot say that a bbox's south latitude must not exceed its north latitude or
    that a datetime interval must not end before it starts; the parameter descriptions say
    so and the server refuses such values with 400. Schema-valid cases that break these rules
    are not "valid data" and are left out of the positive cases.
    """
    query = query or {}
    bbox = query.get("bbox")
    numbers = bbox.split(",") if isinstance(bbox, str) else bbox
    if isinstance(numbers, list) and len(numbers) in (4, 6):
        south, north = numbers[1], numbers[3 if len(numbers) == 4 else 4]
        try:
            if float(south) > float(north):
                return True
        except (TypeError, ValueError):
            pass
    value = query.get("datetime")
    if isinstance(value, str) and value.count("/") == 1:
        start, end = value.split("/")
        if start not in ("", "..") and end not in ("", ".."):
            try:
                return _instant(start) > _instant(end)
            except ValueError:
                return False
    return False


def _instant(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def api_schema(build_dir: Path) -> Iterator[OpenApiSchema]:
    app = create_app(Settings(build_dir=build_dir))
    schema = schemathesis.openapi.from_asgi("/api", app)
    schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none")
    schema.config.checks.update(included_check_names=["all"])

    @schema.hook
    def filter_case(context: schemathesis.HookContext, case: Case) -> bool:
        if case.meta is not None and case.meta.generation.mode.is_positive:
            return not _violates_documented_constraints(case.query)
        return True

    yield schema


# Every operation is a GET; selecting them by name includes /api itself, which schemathesis
# leaves out unless a filter names it, because the document was loaded from it.
schema = schemathesis.pytest.from_fixture("api_schema").include(method="GET")


@schema.parametrize()
def test_every_operation_conforms_to_the_document(case: Case) -> None:
    case.call_and_validate()


def test_every_operation_is_fuzzed(api_schema: OpenApiSchema) -> None:
    document = api_schema.raw_schema
    declared = {f"{m.upper()} {path}" for path, item in document["paths"].items() for m in item}
    fuzzed = api_schema.include(method="GET").get_all_operations()
    labels = {result.ok().label for result in fuzzed}
    assert labels == declared
    # the Features operations (other routers, such as the tiles, add theirs)
    assert labels >= {
        "GET /",
        "GET /conformance",
        "GET /collections",
        "GET /collections/{collectionId}",
        "GET /collections/{collectionId}/items",
        "GET /collections/{collectionId}/items/{featureId}",
        "GET /collections/{collectionId}/items/{featureId}/diagnosis",
        "GET /collections/{collectionId}/queryables",
        "GET /collections/{collectionId}/sortables",
        # each collection's own items path, with its typed property filters
        "GET /collections/hex/items",
        "GET /collections/hex_r8/items",
        "GET /collections/units/items",
        "GET /collections/study_area/items",
        "GET /cities",
        "GET /api",
        "GET /api.html",
        "GET /healthz",
    }
