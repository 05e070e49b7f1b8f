"""Fuzz every operation of the HTTP API from its own OpenAPI document: never a 5xx.

Requests are drawn (with hypothesis) from the schemas in /api/v1/openapi.json,
mixed with arbitrary JSON, against a real agent app served from a thread.
Errors must be ``{"error": {"code", "message"}}`` JSON.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import nested

from site_agent.app import build_app
from site_agent.config import parse_config
from site_agent.openapi import openapi_document

pytestmark = pytest.mark.timeout(120)
DOC = openapi_document()
JSON_VALUES = nested(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    max_size=4,
)


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref:
        node: Any = DOC
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        return node  # type: ignore[no-any-return]
    return schema


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A strategy for values valid under a (small subset of) JSON Schema."""
    schema = _resolve(schema)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of(*(from_schema({**schema, "type": k}) for k in kind))
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(schema.get("minimum", -(2**40)), schema.get("maximum", 2**40))
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9)
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        examples = schema.get("examples", [])
        return (
            st.sampled_from(examples) | st.text(max_size=schema.get("maxLength", 30))
            if examples
            else st.text(max_size=schema.get("maxLength", 30))
        )
    if kind == "array":
        return st.lists(
            from_schema(schema.get("items", {})), min_size=schema.get("minItems", 0), max_size=4
        )
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: from_schema(v) for k, v in props.items() if k in required},
            optional={k: from_schema(v) for k, v in props.items() if k not in required},
        )
    return JSON_VALUES


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in DOC["paths"].items()
        for method, op in item.items()
    ]


@st.composite
def requests(
    draw: st.DrawFn, path: str, op: dict[str, Any]
) -> tuple[str, bytes | None, str | None]:
    url = path
    query: dict[str, str] = {}
    for param in op.get("parameters", []):
        value = draw(from_schema(param["schema"]) | st.text(max_size=12))
        text = json.dumps(value) if not isinstance(value, str) else value
        if param["in"] == "path":
            url = url.replace("{" + param["name"] + "}", quote(text, safe="") or "x")
        elif draw(st.booleans()):
            query[param["name"]] = text
    if query:
        url += "?" + urlencode(query)
    content = op.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        value = draw(from_schema(content["application/json"]["schema"]) | JSON_VALUES)
        return url, json.dumps(value).encode(), "application/json"
    if "application/octet-stream" in content:
        return url, draw(st.binary(max_size=2048)), "application/octet-stream"
    return url, None, None


@pytest.fixture(scope="module")
def agent_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real agent app on loopback, served by its own event loop in a thread."""
    root: Path = tmp_path_factory.mktemp("fuzz")
    config = parse_config(
        {
            "name": "fuzz",
            "listen": "127.0.0.1:1",
            "database": f"sqlite:///{root / 'site.db'}",
            "storage": str(root / "storage"),
            "limits": {"max_request_mb": 1, "max_blob_mb": 1},
        },
        source="<test>",
        base_dir=root,
    )
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(build_app(config))
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def serve() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        holder["port"] = runner.addresses[0][1]
        ready.set()

    thread = threading.Thread(target=loop.run_forever, name="fuzz-agent", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(serve(), loop).result(30)
    assert ready.wait(30)
    try:
        yield f"http://127.0.0.1:{holder['port']}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def call(
    base: str, method: str, url: str, body: bytes | None, ctype: str | None
) -> tuple[int, bytes, str]:
    req = urllib.request.Request(
        base + url, data=body, method=method, headers={"Content-Type": ctype} if ctype else {}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            rtype = resp.headers.get("Content-Type", "")
            if rtype.startswith("text/event-stream"):  # a live stream never ends: its opening
                return resp.status, resp.readline(), rtype
            return resp.status, resp.read(), rtype
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read(), exc.headers.get("Content-Type", "")


@pytest.mark.parametrize(
    ("method", "path", "op"), operations(), ids=[f"{m} {p}" for m, p, _ in operations()]
)
def test_operation_never_answers_5xx(
    agent_url: str, method: str, path: str, op: dict[str, Any]
) -> None:
    @settings(
        max_examples=30,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(request=requests(path, op))
    def check(request: tuple[str, bytes | None, str | None]) -> None:
        url, body, ctype = request
        status, data, rtype = call(agent_url, method, url, body, ctype)
        assert status < 500, f"{method} {url} -> {status}: {data[:300]!r}"
        if status >= 400:
            assert rtype.startswith("application/json"), (method, url, status, rtype)
            error = json.loads(data)["error"]
            assert error["code"] and error["message"], (method, url, data)

    check()
    status, _, _ = call(agent_url, "GET", "/api/v1/health", None, None)
    assert status == 200


BAD_STRINGS = ["\udcff", "caf\udce9.png", "a\x00b", "x" * 5000]
"""No UTF-8 form (a non-UTF-8 file name as Python decodes it), NUL, over-long."""
SCENE = json.dumps({"format": "spillway-scene/1", "objects": []}).encode()


def _each_string_replaced(value: Any, bad: str) -> Iterator[Any]:
    """Copies of ``value`` with one string (a value or a key) replaced by ``bad``."""
    if isinstance(value, str):
        yield bad
    elif isinstance(value, dict):
        for key, sub in value.items():
            yield {(bad if k == key else k): v for k, v in value.items()}
            for variant in _each_string_replaced(sub, bad):
                yield {**value, key: variant}
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            for variant in _each_string_replaced(sub, bad):
                yield [*value[:i], variant, *value[i + 1 :]]


def _assert_clean(method: str, url: str, reply: tuple[int, bytes, str]) -> None:
    status, data, rtype = reply
    assert status < 500, f"{method} {url} -> {status}: {data[:300]!r}"
    if status >= 400:
        assert rtype.startswith("application/json"), (method, url, status, rtype)
        assert json.loads(data)["error"]["message"], (method, url, data)


@pytest.mark.parametrize("bad", BAD_STRINGS, ids=["surrogate", "latin1-name", "nul", "long"])
def test_bad_strings_anywhere_never_answer_5xx(agent_url: str, bad: str) -> None:
    """Each string of a valid submission, and each path and query parameter, made bad."""
    digest = hashlib.sha256(SCENE).hexdigest()
    assert (
        call(agent_url, "PUT", f"/api/v1/blobs/{digest}", SCENE, "application/octet-stream")[0]
        < 300
    )
    body = {
        "name": "fuzz",
        "owner": "me",
        "scene": "scene.json",
        "manifest": [{"path": "scene.json", "sha256": digest, "size": len(SCENE)}],
        "frames": "1-2",
        "profile": {"package": "builtin", "version": ">=0", "tags": ["a"], "engine": "x"},
        "site": "local",
    }
    for variant in _each_string_replaced(body, bad):
        data = json.dumps(variant).encode()
        _assert_clean(
            "POST",
            "/api/v1/jobs",
            call(agent_url, "POST", "/api/v1/jobs", data, "application/json"),
        )
    quoted = quote(bad, safe="", errors="surrogateescape")  # a lone surrogate: a non-UTF-8 byte
    for method, path, op in operations():
        for param in op.get("parameters", []):
            if param["in"] == "path":
                url = path.replace("{" + param["name"] + "}", quoted)
                url = re.sub(r"\{[^}]+\}", "x", url)
            else:
                url = re.sub(r"\{[^}]+\}", "x", path) + f"?{param['name']}={quoted}"
            _assert_clean(method, url, call(agent_url, method, url, None, None))
    assert call(agent_url, "GET", "/api/v1/health", None, None)[0] == 200
