#!/usr/bin/env python3
"""Writes carbon pickle streams made by this Python's own `pickle.dumps`, one per protocol.

Usage: interop_pickles.py OUT_DIR NOW_SECONDS

For every protocol 0..pickle.HIGHEST_PROTOCOL, writes OUT_DIR/proto{N}.bin (frames of a 4-byte
big-endian length + `pickle.dumps([(name, (ts, value)), ...], protocol=N)`, as carbon-relay
sends them) and OUT_DIR/proto{N}.expected.jsonl (one {"metricName","value","timestamp"} per
datapoint, value and timestamp as Python floats). Used by tests/it/interop_carbon.rs.
"""
import json
import os
import pickle
import struct
import sys


def points(proto, now):
    pts = []
    # Frame 1: carbon-relay-like floats.
    for i in range(200):
        pts.append((f"interop.p{proto}.float.{i}", (float(now - i), i * 0.25 - 7.5)))
    # Frame 2: ints (values and timestamps), as a Python 2 style client sends them.
    for i in range(100):
        pts.append((f"interop.p{proto}.int.{i}", (now - 300 - i, i * 1000 - 50_000)))
    # Frame 3: odd but valid values, unicode and tagged names, a fractional timestamp.
    odd = [1e300, -1e-300, 0.1, -0.0, 2**53, -(2**31), 123456789.123456789]
    for i, v in enumerate(odd):
        pts.append((f"interop.p{proto}.odd.{i}", (now - 600 + 0.5, v)))
    pts.append((f"interop.p{proto}.unicode.grüße.東京", (float(now - 601), 1.0)))
    pts.append((f"interop.p{proto}.tagged;env=prod;dc=ord", (float(now - 602), 2.0)))
    return [pts[0:200], pts[200:300], pts[300:]]


def main():
    out, now = sys.argv[1], int(sys.argv[2])
    os.makedirs(out, exist_ok=True)
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        frames = points(proto, now)
        with open(os.path.join(out, f"proto{proto}.bin"), "wb") as f:
            for frame in frames:
                payload = pickle.dumps(frame, protocol=proto)
                f.write(struct.pack("!L", len(payload)) + payload)
        with open(os.path.join(out, f"proto{proto}.expected.jsonl"), "w") as f:
            for frame in frames:
                for name, (ts, value) in frame:
                    f.write(
                        json.dumps(
                            {"metricName": name, "value": float(value), "timestamp": float(ts)},
                            ensure_ascii=False,
                        )
                        + "\n"
                    )


if __name__ == "__main__":
    main()
