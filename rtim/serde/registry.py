"""A small Confluent Schema Registry REST client on the standard library (urllib).

Only what the codec needs: register a schema under a subject (idempotent: the registry returns
the existing id for an already registered schema), look one up, and fetch a schema by id.
Answers are cached for the life of the client; ids are immutable in a registry.

Credentials may be given in the URL (``https://user:secret@registry:8081``); they are sent as
HTTP basic auth and never appear in messages.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from rtim.errors import SchemaError

__all__ = ["RegistryError", "SchemaRegistryClient"]

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryError(SchemaError):
    """The schema registry refused a request or could not be reached.

    `status` is the HTTP status (None when the server could not be reached) and `error_code`
    the registry's own code (e.g. 40403 schema not found), when it sent one.
    """

    def __init__(self, message: str, status: int | None = None, error_code: int | None = None):
        super().__init__(message)
        self.status = status
        self.error_code = error_code


class SchemaRegistryClient:
    """Client of one schema registry. Thread-safe; caches every answer."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SchemaError(f"schema registry URL must be http(s)://host[:port], got {url!r}")
        self._auth: str | None = None
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if parts.port is not None:
            netloc += f":{parts.port}"
        self.url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self._timeout = timeout
        self._lock = threading.Lock()
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, str] = {}

    def register(self, subject: str, schema: str) -> int:
        """Register `schema` (Avro JSON text) under `subject`; return its id."""
        return self._schema_id(
            subject, schema, f"/subjects/{_quote(subject)}/versions", "registering"
        )

    def lookup(self, subject: str, schema: str) -> int:
        """The id of `schema` if it is registered under `subject`; RegistryError (404) if not."""
        return self._schema_id(subject, schema, f"/subjects/{_quote(subject)}", "looking up")

    def _schema_id(self, subject: str, schema: str, path: str, doing: str) -> int:
        key = (subject, schema)
        cached = self._ids.get(key)
        if cached is not None:
            return cached
        answer = self._request("POST", path, {"schema": schema})
        schema_id = _int_field(answer, "id", f"{doing} a schema under {subject!r}")
        with self._lock:
            self._ids[key] = schema_id
            self._schemas.setdefault(schema_id, schema)
        return schema_id

    def get_schema(self, schema_id: int) -> str:
        """The schema (JSON text) with this id; RegistryError (404) if the registry has none."""
        cached = self._schemas.get(schema_id)
        if cached is not None:
            return cached
        answer = self._request("GET", f"/schemas/ids/{int(schema_id)}", None)
        schema = answer.get("schema") if isinstance(answer, dict) else None
        if not isinstance(schema, str):
            raise RegistryError(
                f"schema registry {self.url}: no schema in the answer for id {schema_id}"
            )
        schema_type = answer.get("schemaType", "AVRO")
        if schema_type != "AVRO":
            raise RegistryError(f"schema id {schema_id} is a {schema_type} schema, not Avro")
        with self._lock:
            self._schemas[schema_id] = schema
        return schema

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Accept", f"{_CONTENT_TYPE}, application/json")
        if data is not None:
            request.add_header("Content-Type", _CONTENT_TYPE)
        if self._auth is not None:
            request.add_header("Authorization", self._auth)
        what = f"schema registry {self.url}: {method} {path}"
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise _http_error(what, exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RegistryError(f"{what} failed: {reason}") from None
        try:
            return json.loads(payload)
        except ValueError:
            raise RegistryError(f"{what}: the answer is not JSON") from None


def _http_error(what: str, exc: urllib.error.HTTPError) -> RegistryError:
    message, code = "", None
    try:
        answer = json.loads(exc.read())
        if isinstance(answer, dict):
            message = str(answer.get("message", ""))
            raw_code = answer.get("error_code")
            code = raw_code if isinstance(raw_code, int) else None
    except (ValueError, OSError):
        pass
    detail = f": {message}" if message else ""
    return RegistryError(f"{what} → HTTP {exc.code}{detail}", exc.code, code)


def _quote(subject: str) -> str:
    return urllib.parse.quote(subject, safe="")


def _int_field(answer: Any, name: str, doing: str) -> int:
    value = answer.get(name) if isinstance(answer, dict) else None
    if not isinstance(value, int) or isinstance(value, bool):
        raise RegistryError(f"schema registry answer has no integer {name!r} when {doing}")
    return value
