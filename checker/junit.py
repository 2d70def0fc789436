"""A validation report as JUnit XML: one test case per check, for the CI of template forks.

The one implementation, for both writers of validation reports: `aecc validate` (through
`harness.report.junit`, which re-exports it) and `python -m checker` run in place. It lives in the
checker package because the in-place run may import nothing but the standard library and torch.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any, Mapping

from checker.verdict import Summary

__all__ = ["junit_xml"]

#: the report fields shown as suite properties when present (CI pages list them with the run)
_PROPERTIES = ("status", "profile")


def junit_xml(report: Mapping[str, Any], suite_name: str = "aecc-validate") -> bytes:
    """`report` is a validation report as written (`ValidationReport.to_dict()` or the in-place run's).

    A failed rule or scoring check is a `<failure>` with expected, found, fix and log (a failed
    advice check too, under --strict); a failed advice check otherwise, and a warning, is a passing
    case whose `<system-out>` says so; a skipped one `<skipped>`. The suite's `<system-out>` holds
    the verdict's lines (`checker.verdict`), headline first. A report that ran without a sandbox
    (`isolation.sandbox` false) says that in the suite's properties and `<system-out>`.
    """
    checks = report["checks"]
    verdict = report.get("verdict") or {}
    strict = bool(verdict.get("strict"))

    def counts(c: Mapping[str, Any]) -> bool:
        """A failed check is a JUnit failure when the verdict counts it: rule and scoring always,
        advice only with --strict (else the gate would go red where the organizers would score)."""
        return c["status"] == "failed" and (c.get("level") != "advice" or strict)

    suite = ET.Element(
        "testsuite",
        name=suite_name,
        tests=str(len(checks)),
        failures=str(sum(counts(c) for c in checks)),
        skipped=str(sum(c["status"] == "skipped" for c in checks)),
        time=str(report["timings"].get("total_s", 0)),
    )
    isolation = report.get("isolation")
    properties = [(k, str(report[k])) for k in _PROPERTIES if k in report]
    if isolation:
        properties += [(f"isolation.{k}", str(v).lower() if isinstance(v, bool) else str(v))
                       for k, v in isolation.items()]
    if properties:
        props = ET.SubElement(suite, "properties")
        for name, value in properties:
            ET.SubElement(props, "property", name=name, value=value)
    for c in checks:
        level = c.get("level")
        case = ET.SubElement(suite, "testcase", classname=f"aecc.contract.{level or 'run'}", name=c["id"])
        prefix = f"[{level}] " if level else ""
        if counts(c):
            failure = ET.SubElement(case, "failure", message=(prefix + c["message"])[:500])
            failure.text = "\n".join(f"{k}: {c[k]}" for k in ("expected", "found", "fix", "log") if k in c)
        elif c["status"] == "failed":  # advice, not --strict
            ET.SubElement(case, "system-out").text = "\n".join(
                [f"advice (failed, costs no points): {c['message']}"]
                + [f"{k}: {c[k]}" for k in ("expected", "found", "fix") if c.get(k)])
        elif c["status"] == "skipped":
            ET.SubElement(case, "skipped", message=(prefix + c["message"])[:500])
        elif c["status"] == "warning":
            ET.SubElement(case, "system-out").text = "advice (warning): " + c["message"]
    out = []
    if verdict:
        out.append("\n".join(Summary.from_dict(verdict).lines()))
    if isolation and not isolation.get("sandbox", True):
        out.append(isolation.get("note") or "ran in place: no sandbox, no network cut")
    if out:
        ET.SubElement(suite, "system-out").text = "\n\n".join(out)
    if report["status"] == "error":
        ET.SubElement(suite, "system-err").text = "infrastructure error: the verdict is not the submission's"
    return ET.tostring(ET.ElementTree(suite).getroot(), encoding="utf-8", xml_declaration=True)
