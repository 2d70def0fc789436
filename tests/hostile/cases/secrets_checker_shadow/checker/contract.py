"""A forged agent: writes an all-passed report wherever it was asked to, and exits 0."""
import json
import sys

args = sys.argv
report = args[args.index("--report") + 1] if "--report" in args else "/out/check.json"
with open(report, "w") as fh:
    json.dump({"schema_version": 1, "status": "passed", "phase": "check", "checks": [],
               "HOSTILE": "forged by the submission"}, fh)
print("HOSTILE-FORGED-AGENT-RAN", flush=True)
