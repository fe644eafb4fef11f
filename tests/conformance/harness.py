"""Helpers of tests/conformance/run.sh (standard library only).

    harness.py port                      a free 127.0.0.1 TCP port
    harness.py wait URL PID SECONDS [STATUS]
                                         polls URL until it answers (with STATUS if given);
                                         fails early if process PID has exited
    harness.py compare RESULTS SUITE=MIN...
                                         compares RESULTS/direct-SUITE with RESULTS/gateway-SUITE

The conformance tool's machine-readable output is its `-o DIR`: one directory per scenario,
`server-<scenario>-<ISO timestamp>/checks.json`, a list of checks with a `status` of SUCCESS,
FAILURE, WARNING, INFO or SKIPPED. A scenario passes when none of its checks is a FAILURE (the
rule of the tool's own summary, under which the 2026-07-28 run counts 41 of its 50).
"""

import json
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# server-<scenario>-2026-12-03T15-07-44-923Z
RESULT_DIR = re.compile(r"^server-(?P<name>.+)-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z$")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def wait(url, pid, seconds, status=None):
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            sys.exit(f"process {pid} exited before {url} answered")
        try:
            code = urllib.request.urlopen(url, timeout=1).status
        except urllib.error.HTTPError as e:
            code = e.code
        except OSError:
            code = None
        if code is not None and (status is None or str(code) == status):
            return
        time.sleep(0.1)
    sys.exit(f"{url} did not answer{' ' + status if status else ''} within {seconds}s")


def results(directory):
    """{scenario: list of its checks, or None when it wrote no checks.json}"""
    found = {}
    for entry in sorted(Path(directory).glob("server-*")):
        match = RESULT_DIR.match(entry.name)
        if not match:
            continue
        checks = entry / "checks.json"
        found[match["name"]] = json.loads(checks.read_text()) if checks.is_file() else None
    return found


def passed(checks):
    return checks is not None and not any(c.get("status") == "FAILURE" for c in checks)


def failure_detail(checks):
    if checks is None:
        return ["      no checks.json: the scenario crashed or timed out (see the suite's log)"]
    lines = []
    for check in checks:
        if check.get("status") != "FAILURE":
            continue
        lines.append(f"      - {check.get('name')}: {check.get('errorMessage') or check.get('description')}")
        if check.get("details"):
            details = json.dumps(check["details"], separators=(",", ":"))
            lines.append(f"        details: {details[:600]}{'...' if len(details) > 600 else ''}")
    return lines


def compare(root, *suites):
    root = Path(root)
    ok = True
    report = [f"{'suite':<12} {'direct':>8} {'gateway':>8} {'lost':>5}"]
    details = []
    for spec in suites:
        suite, minimum = spec.split("=")
        direct, gateway = results(root / f"direct-{suite}"), results(root / f"gateway-{suite}")
        total = len(direct.keys() | gateway.keys())
        direct_pass = {name for name, checks in direct.items() if passed(checks)}
        gateway_pass = {name for name, checks in gateway.items() if passed(checks)}
        lost = sorted(direct_pass - gateway_pass)
        report.append(
            f"{suite:<12} {len(direct_pass):>4}/{total:<3} {len(gateway_pass):>4}/{total:<3} {len(lost):>5}"
        )
        if len(direct_pass) < int(minimum):
            ok = False
            details.append(
                f"BROKEN ENVIRONMENT: only {len(direct_pass)} scenarios of {suite} pass directly against "
                f"the conformance server, {minimum} should (shared/conformance/README.md): check the "
                f"server, its mcp SDK version and {root / f'direct-{suite}.log'}"
            )
            details += [f"    {name}" for name in sorted(direct.keys() - direct_pass)]
        for name in lost:
            ok = False
            details.append(f"LOST through the gateway: {suite} {name}")
            details += failure_detail(gateway.get(name))
    print("\n".join(report))
    if details:
        print("\n" + "\n".join(details))
    return ok


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "port":
        free_port()
    elif command == "wait":
        wait(*args)
    elif command == "compare":
        sys.exit(0 if compare(*args) else 1)
    else:
        sys.exit(f"unknown command {command}")
