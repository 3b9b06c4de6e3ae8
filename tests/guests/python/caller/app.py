"""Stagecraft test rule (Python): the `caller` fixture's HTTP call, over wasi:http.

Config: {"calls": [{"method", "url", "headers": {name: value}}], "field": name}. Makes each
call through wasi:http/outgoing-handler (componentize-py's bindings, waiting with
`pollable.block`), logs `call N: status S body B` or `call N: error E`, and with "field"
writes the last JSON answer's `value` to that field of the event's record.

Built against a world that adds wasi:http/outgoing-handler to `rule` (the `uses-http`
marker: scripts/build-polyglot-guests composes it from guest-sdk/wit and the standard
wasi:http 0.2 WIT in tests/guests/python/wasi-http).
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import config, fields, log, outgoing_handler, streams
from wit_world.imports import wasi_http_types as h
from wit_world.imports.log import Level


def call(c: dict) -> tuple[int, bytes]:
    scheme, rest = c["url"].split("://", 1)
    slash = rest.find("/")
    authority, path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    headers = h.Fields.from_list(
        [(k, v.encode()) for k, v in (c.get("headers") or {}).items()]
    )
    req = h.OutgoingRequest(headers)
    method = c.get("method", "GET")
    req.set_method(h.Method_Get() if method == "GET" else h.Method_Other(method))
    req.set_scheme(h.Scheme_Http() if scheme == "http" else h.Scheme_Https())
    req.set_authority(authority)
    req.set_path_with_query(path)
    body = req.body()
    h.OutgoingBody.finish(body, None)
    pending = outgoing_handler.handle(req, None)
    while True:
        got = pending.get()
        if got is not None:
            break
        pending.subscribe().block()
    inner = got.value  # Ok(response) or Err(error-code)
    if isinstance(inner, Err):
        raise Exception(f"{inner.value}")
    resp = inner.value
    status = resp.status()
    incoming = resp.consume()
    stream = incoming.stream()
    data = b""
    while True:
        try:
            data += stream.blocking_read(65536)
        except Err as e:
            if isinstance(e.value, streams.StreamError_Closed):
                break
            raise
    return status, data


class WitWorld(wit_world.WitWorld):
    def handle(self, event) -> None:
        cfg = json.loads(config.get() or "{}")
        last = None
        for n, c in enumerate(cfg.get("calls") or [], start=1):
            try:
                status, data = call(c)
                text = data.decode("utf-8", "replace")
                log.write(Level.INFO, f"call {n}: status {status} body {text[:200]}")
                try:
                    last = json.loads(text)
                except ValueError:
                    last = None
            except Exception as e:  # a refused call is the module's to handle
                log.write(Level.WARN, f"call {n}: error {e}")
        if cfg.get("field") and last is not None and event.record is not None:
            fields.set(event.record.id, cfg["field"], json.dumps(last.get("value")))
