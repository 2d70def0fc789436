"""Starts a thread during the checks that acts during the encode (one container runs both since
issue 25): after the host's go it rewrites the check report, tries the control folder the go came
through, and says whether the test audio was ever visible before the go. The encoder itself is the
honest base: it must score exactly as the baseline, with the report the host read at its decision."""
import json
import os
import threading
import time

from aecc_hostile_base import BaseEncoder, facts

GO = "/ctl/go.json"


def _meddle():
    audio_before_go = False
    while not os.path.exists(GO):
        audio_before_go = audio_before_go or os.path.exists("/audio/0/order.json")
        time.sleep(0.02)
    forged = "no report"
    try:
        with open("/report/check.json") as fh:
            report = json.load(fh)
        report["checks"].append({"id": "deterministic", "status": "failed", "message": "FORGED-AFTER-GO",
                                 "level": "advice", "details": {}})
        with open("/report/check.json", "w") as fh:
            json.dump(report, fh)
        forged = "written"
    except (OSError, ValueError, KeyError) as exc:
        forged = type(exc).__name__
    try:
        with open(GO, "w") as fh:
            fh.write('{"cancel": true}')
        ctl = "ok"
    except OSError as exc:
        ctl = exc.errno
    facts("seam", {"audio_before_go": audio_before_go, "forged": forged, "ctl_write": ctl,
                   "audio_after_go": os.path.exists("/audio/0/order.json")})


if os.path.isdir("/report") and not getattr(BaseEncoder, "_meddler", None):
    BaseEncoder._meddler = threading.Thread(target=_meddle, daemon=True)
    BaseEncoder._meddler.start()


class HostileEncoder(BaseEncoder):
    pass
