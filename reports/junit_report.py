"""The JUnit XML report: drift as test results, for CI systems that display JUnit.

- one ``<testsuite name="driftcheck.ROLE">`` per role, one ``<testcase
  classname="driftcheck.ROLE" name="COLLECTOR">`` per collector compared;
- a drift finding (changed, missing, extra, inconsistent) is a ``<failure
  type="STATE" message="STATE: KEY">`` whose text is the value on each host;
- an incomplete finding is an ``<error type="incomplete">`` with the reasons:
  unknown data must never look like a pass. A host that could not be collected at
  all is an error in every collector's testcase of its roles;
- a collector with no subject on any host of the role (not applicable) is
  ``<skipped>``; waived and ignored findings are listed in ``<system-out>``.

Counts follow the testcase (a testcase with several failures is one failed test):
a testcase with a failure counts as failed, else with an error as an error, else
skipped or passed, so ``tests - failures - errors - skipped`` is the number passed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from driftcheck.findings import WHOLE, DriftReport, Finding, State

from .common import cause_of, collector_label, key_label, per_host, roles, since_label

#: XML 1.0 cannot carry these characters at all, escaped or not.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(value: str) -> str:
    """Text XML can carry: line ends as ``\\n`` (parsers would do so anyway), other
    control characters shown as ``\\xNN``."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", value)


def _body(finding: Finding, since: str = "", cause: str = "") -> str:
    lines = [f"{host}: {shown}" for host, shown in per_host(finding)]
    if finding.reference_hosts and finding.state is not State.INCOMPLETE:
        lines.append(f"reference: {', '.join(finding.reference_hosts)}")
    if finding.explanation:
        lines.append(f"why: {finding.explanation}")
    if finding.note:
        lines.append(f"note: {finding.note}")
    if since:
        lines.append(since)
    if cause:
        lines.append(f"cause: {cause}")
    return _clean("\n".join(lines))


def _testcase(
    report: DriftReport,
    role: str,
    name: str,
    findings: list[Finding],
    not_applicable: str | None,
) -> tuple[ET.Element, str]:
    """The testcase and its outcome: failure, error, skipped or passed."""
    case = ET.Element("testcase", classname=f"driftcheck.{role}", name=name, time="0")
    out: list[str] = []
    for f in findings:
        message = _clean(f"{f.state.value}: {key_label(f)}")
        if f.state.is_drift:
            failure = ET.SubElement(case, "failure", message=message, type=f.state.value)
            failure.text = _body(f, since_label(f, report), cause_of(f, report))
        elif f.state is State.INCOMPLETE:
            ET.SubElement(case, "error", message=message, type=f.state.value).text = _body(f)
        else:
            out.append(f"{message} ({f.note})" if f.note else message)
    kinds = {child.tag for child in case}
    if "failure" in kinds:
        outcome = "failure"
    elif "error" in kinds:
        outcome = "error"
    elif not_applicable is not None:
        ET.SubElement(case, "skipped", message=_clean(not_applicable))
        outcome = "skipped"
    else:
        outcome = "passed"
    if out:
        ET.SubElement(case, "system-out").text = _clean("\n".join(out))
    return case, outcome


def _not_applicable(report: DriftReport, role: str, collector: str) -> str | None:
    """Why ``collector`` has nothing to compare for ``role``: every host has it n/a."""
    hosts = [
        h
        for h in report.hosts
        if role in h.roles and h.environment in (report.reference, *report.targets)
    ]
    if hosts and all(collector in h.not_applicable for h in hosts):
        return f"not applicable on any host: {hosts[0].not_applicable[collector]}"
    return None


def _suite(report: DriftReport, role: str) -> ET.Element:
    findings = [f for f in report.findings if f.role == role]
    suite = ET.Element("testsuite", name=f"driftcheck.{role}")
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("reference", report.reference),
        ("targets", ", ".join(report.targets)),
        ("verdict", report.verdict),
        ("inventory", report.inventory),
    ):
        ET.SubElement(props, "property", name=name, value=_clean(value))
    outcomes: list[str] = []
    # A host that could not be collected at all is unknown for every collector.
    whole = [f for f in findings if f.collector == WHOLE]
    for collector in list(report.collectors) or [WHOLE]:
        own = [f for f in findings if f.collector == collector and collector != WHOLE]
        case, outcome = _testcase(
            report,
            role,
            collector_label(collector),
            whole + own,
            None if collector == WHOLE else _not_applicable(report, role, collector),
        )
        suite.append(case)
        outcomes.append(outcome)
    suite.set("tests", str(len(outcomes)))
    suite.set("failures", str(outcomes.count("failure")))
    suite.set("errors", str(outcomes.count("error")))
    suite.set("skipped", str(outcomes.count("skipped")))
    suite.set("time", "0")
    suite.set("timestamp", report.generated_at)
    return suite


def render(report: DriftReport) -> str:
    """The report as a JUnit XML document (``<testsuites>``, one suite per role)."""
    top = ET.Element("testsuites", name="driftcheck")
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for role in roles(report):
        suite = _suite(report, role)
        top.append(suite)
        for name in totals:
            totals[name] += int(suite.get(name, "0"))
    for name, n in totals.items():
        top.set(name, str(n))
    top.set("time", "0")
    ET.indent(top)
    return ET.tostring(top, encoding="unicode", xml_declaration=True) + "\n"
