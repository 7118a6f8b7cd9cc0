"""The schema registry client and the codec's Confluent wire format.

There is no schema registry on the test machines, so these tests run against a protocol-level
test double: a tiny real HTTP server (http.server, in a thread) implementing the few endpoints
rtim uses as Confluent documents them — POST /subjects/{subject}/versions,
POST /subjects/{subject}, GET /schemas/ids/{id} — with Confluent's error bodies. It is not a
real registry (no compatibility rules, no canonicalisation beyond exact text).
"""

from __future__ import annotations

import base64
import io
import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer

from rtim.errors import DecodeError, SchemaError
from rtim.serde.codec import Codec, subject_for
from rtim.serde.registry import RegistryError, SchemaRegistryClient
from rtim.serde.schemas import get_schemas
from rtim.settings import Settings

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class FakeRegistry:
    """State of the test double: schemas by id, subjects → ids, and every request seen."""

    def __init__(self) -> None:
        self.schemas: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.fail_with: int | None = None
        self.lock = threading.Lock()

    def register(self, subject: str, schema: str) -> int:
        with self.lock:
            known = [i for i, text in self.schemas.items() if text == schema]
            if known:
                schema_id = known[0]
            else:
                schema_id = 100 + len(self.schemas)  # ids are not 1, 2, … in real registries
                self.schemas[schema_id] = schema
            versions = self.subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            return schema_id


class Handler(BaseHTTPRequestHandler):
    registry: FakeRegistry

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _seen(self) -> bool:
        self.registry.requests.append((self.command, self.path, dict(self.headers)))
        if self.registry.fail_with is not None:
            code = self.registry.fail_with
            self._reply(code, {"error_code": code * 100 + 1, "message": "Internal Server Error"})
            return False
        return True

    def do_GET(self) -> None:
        if not self._seen():
            return
        parts = self.path.strip("/").split("/")
        if len(parts) == 3 and parts[:2] == ["schemas", "ids"]:
            schema = self.registry.schemas.get(int(parts[2]))
            if schema is None:
                self._reply(404, {"error_code": 40403, "message": "Schema not found"})
            else:
                self._reply(200, {"schema": schema})
            return
        self._reply(404, {"error_code": 404, "message": "HTTP 404 Not Found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length))
        if not self._seen():
            return
        parts = [urllib.parse.unquote(p) for p in self.path.strip("/").split("/")]
        if len(parts) == 3 and parts[0] == "subjects" and parts[2] == "versions":
            self._reply(200, {"id": self.registry.register(parts[1], body["schema"])})
            return
        if len(parts) == 2 and parts[0] == "subjects":
            ids = self.registry.subjects.get(parts[1])
            if ids is None:
                self._reply(
                    404, {"error_code": 40401, "message": f"Subject '{parts[1]}' not found."}
                )
                return
            for version, schema_id in enumerate(ids, start=1):
                if self.registry.schemas[schema_id] == body["schema"]:
                    self._reply(200, {"subject": parts[1], "id": schema_id, "version": version,
                                      "schema": body["schema"]})  # fmt: skip
                    return
            self._reply(404, {"error_code": 40403, "message": "Schema not found"})
            return
        self._reply(404, {"error_code": 404, "message": "HTTP 404 Not Found"})


@pytest.fixture
def registry() -> Iterator[tuple[FakeRegistry, str]]:
    state = FakeRegistry()
    handler = type("BoundHandler", (Handler,), {"registry": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


SCHEMA = json.dumps({"type": "record", "name": "T", "fields": [{"name": "a", "type": "int"}]})


def test_register_lookup_and_fetch(registry: tuple[FakeRegistry, str]) -> None:
    state, url = registry
    client = SchemaRegistryClient(url)
    schema_id = client.register("orders-value", SCHEMA)
    assert state.schemas[schema_id] == SCHEMA
    assert state.subjects == {"orders-value": [schema_id]}
    assert SchemaRegistryClient(url).lookup("orders-value", SCHEMA) == schema_id
    assert SchemaRegistryClient(url).get_schema(schema_id) == SCHEMA
    method, path, headers = state.requests[0]
    assert (method, path) == ("POST", "/subjects/orders-value/versions")
    assert headers["Content-Type"] == CONTENT_TYPE


def test_answers_are_cached(registry: tuple[FakeRegistry, str]) -> None:
    state, url = registry
    client = SchemaRegistryClient(url)
    schema_id = client.register("s-value", SCHEMA)
    assert client.register("s-value", SCHEMA) == schema_id
    assert client.get_schema(schema_id) == SCHEMA  # known from the registration
    assert client.lookup("s-value", SCHEMA) == schema_id
    assert len(state.requests) == 1


def test_subjects_are_url_quoted(registry: tuple[FakeRegistry, str]) -> None:
    state, url = registry
    SchemaRegistryClient(url).register("a/b c-value", SCHEMA)
    assert state.requests[0][1] == "/subjects/a%2Fb%20c-value/versions"
    assert "a/b c-value" in state.subjects


def test_not_found_carries_status_and_registry_code(registry: tuple[FakeRegistry, str]) -> None:
    _, url = registry
    with pytest.raises(RegistryError, match="HTTP 404: Schema not found") as info:
        SchemaRegistryClient(url).get_schema(7)
    assert (info.value.status, info.value.error_code) == (404, 40403)
    with pytest.raises(RegistryError, match="Subject 'nope' not found"):
        SchemaRegistryClient(url).lookup("nope", SCHEMA)


def test_server_error_is_one_clear_line(registry: tuple[FakeRegistry, str]) -> None:
    state, url = registry
    state.fail_with = 500
    with pytest.raises(RegistryError) as info:
        SchemaRegistryClient(url).register("x-value", SCHEMA)
    message = str(info.value)
    assert message.startswith(f"schema registry {url}: POST /subjects/x-value/versions")
    assert "HTTP 500" in message
    assert "\n" not in message
    assert isinstance(info.value, SchemaError)


def test_unreachable_registry() -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RegistryError, match=f"127.0.0.1:{port}.*failed") as info:
        SchemaRegistryClient(f"http://127.0.0.1:{port}", timeout=2).get_schema(1)
    assert info.value.status is None


def test_credentials_in_the_url_become_basic_auth_and_stay_secret(
    registry: tuple[FakeRegistry, str],
) -> None:
    state, url = registry
    secret_url = url.replace("http://", "http://svc%40corp:s3cr%3At@")
    client = SchemaRegistryClient(secret_url)
    assert "s3cr" not in client.url
    client.register("k-value", SCHEMA)
    auth = state.requests[0][2]["Authorization"]
    assert base64.b64decode(auth.removeprefix("Basic ")) == b"svc@corp:s3cr:t"
    state.fail_with = 500
    with pytest.raises(RegistryError) as info:
        client.register("other-value", SCHEMA)
    assert "s3cr" not in str(info.value)


@pytest.mark.parametrize("url", ["localhost:8081", "ftp://host", "http://"])
def test_bad_url(url: str) -> None:
    with pytest.raises(SchemaError, match="schema registry URL must be"):
        SchemaRegistryClient(url)


# --- the codec with a registry --------------------------------------------------------------

CLICK = {
    "event_id": "e-1", "customer_id": "c-1", "ts": 1763798400000, "session_id": "s-1",
    "type": "login", "page": None, "product_id": None, "category": None, "price": None,
    "quantity": None, "anonymous_id": None,
}  # fmt: skip


def test_codec_writes_confluent_format_under_the_topic_subject(
    registry: tuple[FakeRegistry, str],
) -> None:
    state, url = registry
    codec = Codec.from_settings(Settings(schema_registry_url=url))
    data = codec.encode("ClickstreamEvent", CLICK, topic="p.rtim.events.clickstream")
    schema_id = state.subjects[subject_for("p.rtim.events.clickstream")][0]
    assert subject_for("p.rtim.events.clickstream") == "p.rtim.events.clickstream-value"
    assert data[0] == 0
    assert int.from_bytes(data[1:5], "big") == schema_id
    assert json.loads(state.schemas[schema_id]) == get_schemas().current("ClickstreamEvent").raw
    assert codec.decode(data, "ClickstreamEvent") == ("ClickstreamEvent", CLICK)

    # a fresh reader fetches the writer schema by id, once
    reader = Codec.from_settings(Settings(schema_registry_url=url))
    before = len(state.requests)
    for _ in range(3):
        assert reader.decode(data) == ("ClickstreamEvent", CLICK)
    assert [r[1] for r in state.requests[before:]] == [f"/schemas/ids/{schema_id}"]
    # and still reads single-object encoded messages
    assert reader.decode(Codec().encode("ClickstreamEvent", CLICK))[1] == CLICK


def test_codec_without_topic_cannot_pick_a_subject(registry: tuple[FakeRegistry, str]) -> None:
    _, url = registry
    codec = Codec.from_settings(Settings(schema_registry_url=url))
    with pytest.raises(SchemaError, match="needs the topic name"):
        codec.encode("ClickstreamEvent", CLICK)


def test_unknown_schema_id_is_a_decode_error(registry: tuple[FakeRegistry, str]) -> None:
    _, url = registry
    codec = Codec.from_settings(Settings(schema_registry_url=url))
    with pytest.raises(DecodeError, match=r"^schema id 999 is unknown to the registry$"):
        codec.decode(b"\x00" + (999).to_bytes(4, "big") + b"\x02")


def test_registry_outage_is_not_a_decode_error(registry: tuple[FakeRegistry, str]) -> None:
    """A message must not be dead-lettered because the registry is down: SchemaError, not
    DecodeError, so the caller retries."""
    state, url = registry
    state.fail_with = 503
    codec = Codec.from_settings(Settings(schema_registry_url=url))
    with pytest.raises(SchemaError) as info:
        codec.decode(b"\x00" + (100).to_bytes(4, "big") + b"\x02")
    assert not isinstance(info.value, DecodeError)


def test_registry_schema_of_an_older_version_is_resolved(
    registry: tuple[FakeRegistry, str],
) -> None:
    """A producer registered an older Outcome (without `value`); rtim reads it as the current."""
    state, url = registry
    current = get_schemas().current("Outcome").raw
    old = {**current, "fields": [f for f in current["fields"] if f["name"] != "value"]}
    old_id = state.register("x-value", json.dumps(old))
    body = io.BytesIO()
    record = {"event_id": "o", "decision_id": "d", "customer_id": "c", "ts": 5,
              "channel": "sms", "offer_id": "card", "type": "accept"}  # fmt: skip
    schemaless_writer(body, parse_schema(old), record)
    data = b"\x00" + old_id.to_bytes(4, "big") + body.getvalue()
    codec = Codec.from_settings(Settings(schema_registry_url=url))
    assert codec.decode(data, "Outcome") == ("Outcome", {**record, "value": None})


def test_registry_schema_of_another_record_is_not_decoded_as_ours(
    registry: tuple[FakeRegistry, str],
) -> None:
    state, url = registry
    foreign = state.register("x-value", SCHEMA)
    codec = Codec.from_settings(Settings(schema_registry_url=url))
    with pytest.raises(DecodeError, match="unknown schema T"):
        codec.decode(b"\x00" + foreign.to_bytes(4, "big") + b"\x02")


def test_a_record_with_our_name_in_another_namespace_is_not_ours(
    registry: tuple[FakeRegistry, str],
) -> None:
    state, url = registry
    foreign = {**get_schemas().current("Outcome").raw, "namespace": "acme"}
    foreign_id = state.register("x-value", json.dumps(foreign))
    codec = Codec.from_settings(Settings(schema_registry_url=url))
    with pytest.raises(DecodeError, match=r"^message of unknown schema acme\.Outcome$"):
        codec.decode(b"\x00" + foreign_id.to_bytes(4, "big") + b"\x02")
