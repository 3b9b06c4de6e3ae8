#!/usr/bin/env python3
"""Declare a Stagecraft module's config schema: append a JSON Schema to a built component
as its `stagecraft:config-schema` custom section.

    python3 add-config-schema.py module.wasm config-schema.json [-o out.wasm]

The host reads the section at upload, refuses binding configs that do not match the schema
(422, naming the JSON path) and the console draws its config form from it. Rust rules get
the section from the SDK (`#[derive(ConfigSchema)]` + `export_config_schema!`); this script
is the build step for Python and JavaScript rules (or any component). Standard library only.

The schema must be a JSON object of at most 32 KiB; `$ref`s may point only inside it. The
module is rewritten in place unless `-o` names another file; a module that already declares
a schema is refused.
"""

import argparse
import json
import sys

SECTION = "stagecraft:config-schema"
LIMIT = 32 * 1024
COMPONENT = b"\0asm\x0d\x00\x01\x00"


def leb128(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def read_leb128(data, at):
    value, shift = 0, 0
    while True:
        if at >= len(data):
            raise ValueError("truncated section header")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def top_level_custom_sections(data):
    """Names of the component's top-level custom sections."""
    at, names = len(COMPONENT), []
    while at < len(data):
        section_id = data[at]
        size, body = read_leb128(data, at + 1)
        if section_id == 0:
            name_len, name_at = read_leb128(data, body)
            names.append(data[name_at:name_at + name_len].decode("utf-8", "replace"))
        at = body + size
    return names


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("module", help="the built component (.wasm)")
    p.add_argument("schema", help="the JSON Schema of the module's binding config (.json)")
    p.add_argument("-o", "--output", help="where to write the result (default: in place)")
    args = p.parse_args()

    with open(args.module, "rb") as f:
        data = f.read()
    if not data.startswith(COMPONENT):
        sys.exit(f"error: {args.module} is not a WebAssembly component")
    try:
        existing = top_level_custom_sections(data)
    except ValueError as e:
        sys.exit(f"error: {args.module} is not a well-formed component: {e}")
    if SECTION in existing:
        sys.exit(f"error: {args.module} already declares a config schema")

    with open(args.schema, "rb") as f:
        try:
            schema = json.load(f)
        except ValueError as e:
            sys.exit(f"error: {args.schema} is not valid JSON: {e}")
    if not isinstance(schema, dict):
        sys.exit(f"error: {args.schema} must hold a JSON object (a JSON Schema)")
    payload = json.dumps(schema, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(payload) > LIMIT:
        sys.exit(f"error: the schema is {len(payload)} bytes; the limit is {LIMIT}")

    name = SECTION.encode("utf-8")
    body = leb128(len(name)) + name + payload
    out = data + b"\x00" + leb128(len(body)) + body
    with open(args.output or args.module, "wb") as f:
        f.write(out)
    print(f"{args.output or args.module}: config schema added ({len(payload)} bytes)")


if __name__ == "__main__":
    main()
