"""Judges a Gateway API conformance report (the YAML the suite writes with
--report-output): prints each profile's core and extended results, and exits 1
when a core test failed or was skipped, or an extended test of a claimed
feature failed, unless the test is listed in known_failures.txt (tests gantry
does not pass yet, each with its reason; the list only shrinks).

With the suite's output (run.py's log) too, any test the suite ran and failed
counts, also one the report's profiles leave out (GRPCRouteNamedRule: its
feature is claimed, but the GATEWAY-GRPC profile reports Gateway extended
features only).

    python3 tests/conformance/check_report.py REPORT.yaml [SUITE.log]
"""
import re
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


def known_failures():
    out = {}
    for line in (HERE / "known_failures.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, why = line.partition(" ")
            out[name] = why.strip()
    return out


def main():
    report = yaml.safe_load(Path(sys.argv[1]).read_text())
    known = known_failures()
    bad = []
    for prof in report.get("profiles") or []:
        core = prof.get("core") or {}
        stats = core.get("statistics") or {}
        print(f"{prof['name']} core: {core.get('result')}, passed {stats.get('Passed', 0)}, "
              f"failed {stats.get('Failed', 0)}, skipped {stats.get('Skipped', 0)}")
        for t in core.get("failedTests") or []:
            print(f"  core FAILED: {t}" + (f" (known: {known[t]})" if t in known else ""))
            if t not in known:
                bad.append(t)
        for t in core.get("skippedTests") or []:
            print(f"  core SKIPPED: {t}")
            bad.append(t)
        ext = prof.get("extended") or {}
        if ext:
            s = ext.get("statistics") or {}
            print(f"{prof['name']} extended: {ext.get('result')}, passed {s.get('Passed', 0)}, "
                  f"failed {s.get('Failed', 0)}; features {ext.get('supportedFeatures') or []}")
            for t in ext.get("failedTests") or []:
                print(f"  extended FAILED: {t}")
                if t not in known:
                    bad.append(t)
    if len(sys.argv) > 2:
        # `go test -v` prints one "    --- FAIL: TestConformance/<ShortName> (...)" per failed test.
        top = re.compile(r"^    --- FAIL: TestConformance/([A-Za-z0-9]+) ")
        for line in Path(sys.argv[2]).read_text(errors="replace").splitlines():
            m = top.match(line)
            if m and m.group(1) not in known and m.group(1) not in bad:
                print(f"  FAILED (suite log): {m.group(1)}")
                bad.append(m.group(1))
    if bad:
        print("conformance: unexpected failures or skips: " + ", ".join(bad))
        return 1
    print("conformance: no failure beyond known_failures.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
