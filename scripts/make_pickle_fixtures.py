#!/usr/bin/env python3
"""Generates pickle interop fixtures with the real CPython pickler (stdlib only).

Writes tests/data/pickle/py3-generated-protoN.bin (a TCP stream: 4-byte big-endian length +
pickle per frame) and .expected.jsonl (one {"metricName", "value", "timestamp"} per datapoint)
for protocols 0-5. Deterministic: rerunning produces identical files.
"""
import json
import os
import pickle
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "pickle")


def frames():
    """Each frame is a list of (name, (timestamp, value)); covers every value form."""
    ts = 1764000000
    shared = ("fx.gen.memo.shared", (ts, 7.5))
    small = [
        ("fx.gen.int", (ts, 42)),
        ("fx.gen.negint", (ts, -7)),
        ("fx.gen.float", (ts + 0.5, 3.25)),
        ("fx.gen.bigint", (ts, 2**70 + 12345)),
        ("fx.gen.negbigint", (ts, -(2**65))),
        ("fx.gen.true", (ts, True)),
        ("fx.gen.false", (ts, False)),
        ("fx.gen.i32", (ts, 2**31 - 1)),
        ("fx.gen.i64", (ts, 2**40)),
        ("fx.gen.u16", (ts, 60000)),
        ("fx.gen.strvalue", (ts, "1.5")),
        ("fx.gen.listpair", [ts, 9.0]),
        ("métrique.température.°C", (ts, 1.0)),
        ("指标.延迟", (ts, 2.0)),
        ("emoji.\U0001f600", (ts, 3.0)),
        ("fx.gen.back\\slash", (ts, 4.0)),
        ("fx.gen.quote'\"", (ts, 5.0)),
        ("app.requests;env=prod;dc=ord", (ts, 6.0)),
        ("fx.gen." + "long" * 100, (ts, 8.0)),
        shared,
        shared,
        shared,
    ]
    relay = [("servers.web%02d.cpu.%d" % (i % 17, i), (float(ts + i), float(i) * 0.5)) for i in range(500)]
    ints = [("servers.int.%d" % i, (ts + i, i * 1000)) for i in range(500)]
    return [small, relay, ints]


def main():
    os.makedirs(OUT, exist_ok=True)
    for proto in range(6):
        name = "py3-generated-proto%d" % proto
        stream = bytearray()
        lines = []
        for frame in frames():
            payload = pickle.dumps(frame, protocol=proto)
            stream += struct.pack("!L", len(payload)) + payload
            for metric, (t, v) in frame:
                lines.append(json.dumps({"metricName": metric, "value": float(v), "timestamp": float(t)}, ensure_ascii=False))
        with open(os.path.join(OUT, name + ".bin"), "wb") as f:
            f.write(stream)
        with open(os.path.join(OUT, name + ".expected.jsonl"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
