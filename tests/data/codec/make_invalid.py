#!/usr/bin/env python3
"""Writes the hostile-input corpus in invalid/: wire-format messages (magic 0x00,
schema id 1 = nhse.Incident v1) whose Avro body is malformed in one named way.
tests/unit/test_codec.c decodes every invalid/*.bin with the v1 writer schema and
expects CS_ERR_AVRO_DECODE, with no crash and no leak under the sanitizers.

nhse.Incident v1 field order: incident_id, reporting_org_ods, location_id (strings),
category (enum, 7 symbols), harm (enum, 5 symbols), occurred_at, reported_at (longs),
description (union null|string).

Run from this directory; the .bin files are committed, this script documents them."""
import os

HEADER = b"\x00\x00\x00\x00\x01"


def zz(v):
    """Avro long: zig-zag, then base-128 little-endian varint."""
    z = ((v << 1) ^ (v >> 63)) & 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def s(text):
    b = text.encode()
    return zz(len(b)) + b


def incident(incident_id=s("NHSE-2026-000123"), ods=s("RXQ"), loc=s("1-101669119"),
             category=zz(2), harm=zz(2), occurred=zz(1795166100000),
             reported=zz(1795166200000), description=zz(1) + s("CANARY-7f3a")):
    return incident_id + ods + loc + category + harm + occurred + reported + description


VARINT_11 = b"\x80" * 10 + b"\x00"          # continuation past the 10th byte
VARINT_OVERFLOW = b"\xff" * 9 + b"\x02"      # 10th byte sets bits above 2^64
INT64_MIN = b"\xff" * 9 + b"\x01"
INT64_MAX = b"\xfe" + b"\xff" * 8 + b"\x01"

CASES = {
    "empty-payload": b"",
    "one-zero-byte": b"\x00",
    "incident_id-truncated": zz(10) + b"NHSE",
    "incident_id-length-minus-1": zz(-1) + b"NHSE",
    "incident_id-length-minus-2pow31": zz(-(2 ** 31)) + b"NHSE",
    "incident_id-length-2pow40": zz(2 ** 40) + b"NHSE",
    "incident_id-length-int64-max": INT64_MAX + b"NHSE",
    "incident_id-length-int64-min": INT64_MIN + b"NHSE",
    "incident_id-length-varint-11-bytes": VARINT_11 + b"NHSE",
    "incident_id-length-varint-overflow": VARINT_OVERFLOW + b"NHSE",
    "incident_id-length-varint-truncated": b"\x80\x80",
    "location_id-length-past-end": incident(loc=zz(1000) + b"1-101669119"),
    "category-index-7": incident(category=zz(7)),
    "category-index-minus-1": incident(category=zz(-1)),
    "category-index-int64-min": incident(category=INT64_MIN),
    "category-index-2pow32": incident(category=zz(2 ** 32)),
    "harm-index-5": incident(harm=zz(5)),
    "harm-index-minus-2pow31": incident(harm=zz(-(2 ** 31))),
    "occurred_at-varint-11-bytes": incident(occurred=VARINT_11),
    "occurred_at-varint-overflow": incident(occurred=VARINT_OVERFLOW),
    "reported_at-truncated-varint": incident(reported=b"\x80\x80\x80", description=b""),
    "description-missing": incident(description=b""),
    "description-union-branch-2": incident(description=zz(2) + s("x")),
    "description-union-branch-minus-1": incident(description=zz(-1) + s("x")),
    "description-union-branch-int64-max": incident(description=INT64_MAX),
    "description-string-length-minus-1": incident(description=zz(1) + zz(-1)),
    "description-string-length-2pow40": incident(description=zz(1) + zz(2 ** 40) + b"x"),
    "description-string-truncated": incident(description=zz(1) + zz(20) + b"CANARY"),
    "trailing-zero-byte": incident() + b"\x00",
    "trailing-garbage-1k": incident() + bytes(range(256)) * 4,
    "null-description-then-string": incident(description=zz(0) + s("x")),
    "all-0xff-64": b"\xff" * 64,
    "all-0x80-64": b"\x80" * 64,
    "all-0x01-64": b"\x01" * 64,
    "all-0x7f-64": b"\x7f" * 64,
    "json-object-after-header": b'{"incident_id":"NHSE-1"}',
    "second-wire-header-inside": HEADER + incident(),
    "three-strings-then-end": s("NHSE-1") + s("RXQ") + s("1-101669119"),
}

if __name__ == "__main__":
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "invalid")
    os.makedirs(here, exist_ok=True)
    for name, body in sorted(CASES.items()):
        with open(os.path.join(here, name + ".bin"), "wb") as f:
            f.write(HEADER + body)
    print("wrote %d files to %s" % (len(CASES), here))
