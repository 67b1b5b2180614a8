"""Avro codec over fastavro with single-object encoding.

Wire form of every event: marker C3 01, the 8-byte little-endian CRC-64-AVRO fingerprint of the
writer schema's canonical form, then the Avro binary body. The fingerprint tells a reader which
schema wrote the bytes; the reader then resolves it to the newest version of that record it
knows (schemas/src/catalog_sync/schemas/<name>.v<N>.avsc), so old events stay readable after a schema evolves.
"""

from __future__ import annotations

import io
import json
import re
import struct
from dataclasses import dataclass
from importlib import resources

import fastavro
from fastavro.schema import to_parsing_canonical_form

MARKER = b"\xc3\x01"
_HEADER_LEN = 10
_EMPTY = 0xC15D213AA4D7A795
_FILE_NAME = re.compile(r"^(?P<stem>[a-z0-9_]+)\.v(?P<version>\d+)\.avsc$")


def _crc64_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY & -(fp & 1))
        table.append(fp)
    return table


_TABLE = _crc64_table()


def crc64_avro(data: bytes) -> int:
    """The Avro specification's 64-bit Rabin fingerprint."""
    fp = _EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp


class DecodeError(ValueError):
    """Bytes that cannot become an event. `reason` is a short machine code for dead letters."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SchemaVersion:
    record_name: str  # short name, e.g. "CatalogItemChanged"
    version: int
    parsed: dict
    fingerprint: bytes  # 8 bytes, little-endian


def load_schema_versions(folder=None) -> list[SchemaVersion]:
    """Every schemas/src/catalog_sync/schemas/*.v<N>.avsc (bundled with the package unless `folder` is given)."""
    root = resources.files("catalog_sync.schemas") if folder is None else folder
    versions = []
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        match = _FILE_NAME.match(entry.name)
        if not match:
            continue
        schema = json.loads(entry.read_text(encoding="utf-8"))
        parsed = fastavro.parse_schema(schema)
        if not isinstance(parsed, dict):
            raise ValueError(f"{entry.name} is not an Avro record schema")
        canonical = to_parsing_canonical_form(parsed)
        versions.append(
            SchemaVersion(
                record_name=schema["name"],
                version=int(match["version"]),
                parsed=parsed,
                fingerprint=struct.pack("<Q", crc64_avro(canonical.encode("utf-8"))),
            )
        )
    return versions


class AvroCodec:
    """Encodes with the newest version of a record; decodes any known version into the newest."""

    def __init__(self, versions: list[SchemaVersion] | None = None):
        versions = load_schema_versions() if versions is None else versions
        self._by_fingerprint = {v.fingerprint: v for v in versions}
        self._latest: dict[str, SchemaVersion] = {}
        for v in versions:
            current = self._latest.get(v.record_name)
            if current is None or v.version > current.version:
                self._latest[v.record_name] = v

    @property
    def record_names(self) -> list[str]:
        return sorted(self._latest)

    def latest(self, record_name: str) -> SchemaVersion:
        try:
            return self._latest[record_name]
        except KeyError:
            raise KeyError(f"no Avro schema for record {record_name!r}") from None

    def encode(self, record_name: str, event: dict, *, version: SchemaVersion | None = None) -> bytes:
        """Single-object encoding of `event` with the newest schema (or the given version)."""
        schema = version or self.latest(record_name)
        out = io.BytesIO()
        out.write(MARKER)
        out.write(schema.fingerprint)
        fastavro.schemaless_writer(out, schema.parsed, event)
        return out.getvalue()

    def decode(self, data: bytes | None) -> tuple[str, dict]:
        """(record name, event as the newest schema of that record sees it), or DecodeError."""
        if not data or len(data) < _HEADER_LEN or data[:2] != MARKER:
            raise DecodeError("not_avro", "value is not Avro single-object encoded (marker C3 01 missing)")
        writer = self._by_fingerprint.get(data[2:_HEADER_LEN])
        if writer is None:
            raise DecodeError("unknown_schema", f"no known schema has fingerprint {data[2:_HEADER_LEN].hex()}")
        reader = self._latest[writer.record_name]
        body = io.BytesIO(data)
        body.seek(_HEADER_LEN)
        try:
            event = fastavro.schemaless_reader(
                body, writer.parsed, None if reader is writer else reader.parsed
            )
        except Exception as exc:  # fastavro raises many types on corrupt input
            raise DecodeError("undecodable", f"{writer.record_name} body is corrupt: {exc!r}"[:500]) from None
        if body.tell() != len(data):
            raise DecodeError("undecodable", f"{writer.record_name} body has {len(data) - body.tell()} trailing bytes")
        assert isinstance(event, dict)  # every known schema is a record (load_schema_versions)
        return writer.record_name, event
