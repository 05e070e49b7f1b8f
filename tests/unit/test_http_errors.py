"""The web layer's one table from error class to (status, code), and its middleware."""

from __future__ import annotations

import json

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from scheduler.errors import SchedulerError
from site_agent.errors import (
    AgentError,
    BadRequestError,
    ConflictError,
    JobExistsError,
    MissingAssetsError,
    NotFoundError,
    UnavailableError,
)
from site_agent.files import HashMismatchError, TooLargeError
from site_agent.http_errors import http_error, make_error_middleware
from site_agent.lifecycle import TransitionRefusedError
from site_agent.store import StoreConflictError, StoreUnavailableError


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (BadRequestError("x"), (400, "bad_request")),
        (NotFoundError("x"), (404, "not_found")),
        (ConflictError("x"), (409, "conflict")),
        (JobExistsError("x"), (409, "conflict")),  # a subclass gets its parent's row
        (TransitionRefusedError("x"), (409, "conflict")),
        (MissingAssetsError("x"), (422, "missing_assets")),
        (UnavailableError("x"), (503, "unavailable")),
        (HashMismatchError("x"), (422, "hash_mismatch")),
        (TooLargeError("x"), (413, "too_large")),
        (SchedulerError("x"), (400, "bad_request")),
        (StoreUnavailableError("x"), (503, "unavailable")),
        (StoreConflictError("x"), None),  # a store failure, not the client's mistake
        (ValueError("x"), None),
    ],
)
def test_each_error_class_maps_to_one_status_and_code(
    exc: Exception, expected: tuple[int, str] | None
) -> None:
    assert http_error(exc) == expected


def test_domain_errors_carry_no_http_status() -> None:
    for cls in (AgentError, NotFoundError, ConflictError, MissingAssetsError, UnavailableError):
        assert not hasattr(cls("x"), "status")


class _Duplicate(ConflictError):
    pass


async def _respond(exc: Exception) -> web.Response:
    middleware = make_error_middleware({_Duplicate: (409, "duplicate")})

    async def handler(request: web.Request) -> web.StreamResponse:
        raise exc

    response = await middleware(make_mocked_request("GET", "/x"), handler)
    assert isinstance(response, web.Response)
    return response


async def test_middleware_writes_the_error_body_with_extra_fields() -> None:
    response = await _respond(MissingAssetsError("upload them", missing=["ab"]))
    assert response.status == 422
    assert json.loads(response.text or "") == {
        "error": {"code": "missing_assets", "message": "upload them", "missing": ["ab"]}
    }


async def test_an_apps_own_rows_win_over_the_parent_class() -> None:
    response = await _respond(_Duplicate("seen"))
    assert (response.status, json.loads(response.text or "")["error"]["code"]) == (409, "duplicate")


async def test_unmapped_store_errors_are_503_and_others_propagate() -> None:
    response = await _respond(StoreConflictError("boom"))
    assert (response.status, json.loads(response.text or "")["error"]["code"]) == (
        503,
        "store_error",
    )
    with pytest.raises(ValueError):
        await _respond(ValueError("bug"))
