"""Describe stage: construct the encoder (network off, weights already fetched) and report the three
attributes the trusted stages need, as JSON. Nothing else runs.

    python -P -m checker.describe --submission DIR --encoder FILE.py:Class --out FILE
"""

from __future__ import annotations

import argparse
import json
import numbers
import sys
import traceback

from checker.encode import load_encoder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="checker.describe")
    parser.add_argument("--submission", required=True)
    parser.add_argument("--encoder", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        encoder = load_encoder(args.submission, args.encoder)
        values = {k: getattr(encoder, k) for k in ("sampling_rate", "output_dim", "hop_size_in_ms")}
    except BaseException:
        print("aecc-describe: the encoder could not be constructed:\n" + traceback.format_exc()[-3000:], file=sys.stderr)
        return 1
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            print(f"aecc-describe: {key} is {value!r}, not a number", file=sys.stderr)
            return 1
    values["sampling_rate"] = int(values["sampling_rate"])
    values["output_dim"] = int(values["output_dim"])
    values["hop_size_in_ms"] = float(values["hop_size_in_ms"])
    values["class_name"] = type(encoder).__name__
    with open(args.out, "w") as fh:
        json.dump(values, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
