"""What CI systems read from ``loadertune check``: a JUnit XML file (one test case per check, a
``failure`` element holding the reason), GitHub Actions workflow commands (``::error::``
annotations) and the log's lines. Pure functions of the checks; no torch, nothing measured."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from loadertune.analysis.gate import Check

SUITE = "loadertune check"
TITLE = "loadertune check"


def junit_xml(checks: Sequence[Check], target: str, warnings: Sequence[str] = ()) -> str:
    """The JUnit document: a ``testsuites`` root holding one ``testsuite`` whose test cases
    are named after the checks, with ``target`` as their class name; warnings go to
    ``system-out``.

    >>> print(junit_xml([Check("data wait", True, "...")], "data.py:train_set"))  # doctest: +SKIP
    """
    failures = str(sum(not c.passed for c in checks))
    counts = {"tests": str(len(checks)), "failures": failures, "errors": "0"}
    root = ET.Element("testsuites", {"name": SUITE, **counts})
    suite = ET.SubElement(root, "testsuite", {"name": SUITE, **counts, "skipped": "0"})
    for check in checks:
        case = ET.SubElement(suite, "testcase", {"classname": target, "name": check.name})
        if not check.passed:
            failure = ET.SubElement(case, "failure", {"message": check.paragraph, "type": SUITE})
            failure.text = check.paragraph
    if warnings:
        ET.SubElement(suite, "system-out").text = "\n".join(f"warning: {w}" for w in warnings)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def workflow_commands(checks: Sequence[Check], warnings: Sequence[str] = ()) -> list[str]:
    """``::error title=...::reason`` for each failed check and ``::warning ...`` for each
    warning: GitHub Actions shows them on the run's summary page."""
    lines = [f"::warning title={_property(TITLE)}::{_data(w)}" for w in warnings]
    for check in checks:
        if not check.passed:
            title = _property(f"{TITLE}: {check.name}")
            lines.append(f"::error title={title}::{_data(check.paragraph)}")
    return lines


def _data(text: str) -> str:
    """A workflow command's message, escaped as the runner unescapes it."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    """A workflow command's property value: the message's escapes, and ``:`` and ``,``."""
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def check_lines(check: dict[str, Any] | None) -> list[str]:
    """A check's outcomes as a result document holds them (``Result.check``): ``PASS name:
    paragraph`` or ``FAIL ...`` each, then the count."""
    if not check:
        return []
    checks = check.get("checks") or []
    lines = [f"{'PASS' if c['passed'] else 'FAIL'} {c['name']}: {c['paragraph']}" for c in checks]
    failed, total = sum(not c["passed"] for c in checks), len(checks)
    noun = "check" if total == 1 else "checks"
    outcome = f"failed: {failed} of {total} {noun}" if failed else f"passed: {total} {noun}"
    return [*lines, f"loadertune check {outcome}"]
