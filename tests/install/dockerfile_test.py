#!/usr/bin/python3
"""Checks the Dockerfile without a container engine.

1. shape: a debian:bookworm build stage that runs hack/install-deps.sh and
   builds gantry-proxy + gantry-controller with cmake/ninja and
   -DGANTRY_BUILD_TESTS=OFF (directly, or as the last build of hack/pgo.sh,
   the profile-guided build, in Release with -DGANTRY_PGO=use); a debian:bookworm-slim runtime stage that installs
   packages by name with --no-install-recommends, no compiler, -dev package or
   build tool, copies the binaries to /usr/local/bin and runs as 65532;
2. libraries: every shared library `ldd` resolves for the built binaries
   (build/bin/gantry-proxy, build/bin/gantry-controller) belongs to a Debian
   package (`dpkg -S`) that the runtime stage installs.

Usage: dockerfile_test.py [--bin-dir DIR]   (default: <repo>/build/bin)
A missing binary is a failure in CI (the test runs after the build there) and
a note on a developer machine; with neither binary present the test skips.
"""

import argparse
import os
import re
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bin-dir", default=os.path.join(common.ROOT, "build", "bin"))
ap.add_argument("--dockerfile", default=os.path.join(common.ROOT, "Dockerfile"))
args = ap.parse_args()
t = common.Tally("dockerfile_test")
BINARIES = ["gantry-proxy", "gantry-controller"]


# ------------------------------------------------------------------ parse
def instructions(text):
    """Dockerfile instructions as (KEYWORD, argument) with continuations joined, comments dropped."""
    out, cur = [], ""
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#") or (not s and not cur):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        if cur.strip():
            kw, _, rest = cur.strip().partition(" ")
            out.append((kw.upper(), rest.strip()))
        cur = ""
    return out


with open(args.dockerfile) as f:
    ins = instructions(f.read())
stages = []
for kw, arg in ins:
    if kw == "FROM":
        stages.append({"from": arg, "ins": []})
    elif stages:
        stages[-1]["ins"].append((kw, arg))
t.check(len(stages) == 2, "two stages (build, runtime)", str([s["from"] for s in stages]))
build, runtime = (stages + [{"from": "", "ins": []}] * 2)[:2]
t.check(re.fullmatch(r"debian:bookworm\s+AS\s+build", build["from"], re.I) is not None, "build stage is debian:bookworm")
t.check(runtime["from"].split()[0] == "debian:bookworm-slim", "runtime stage is debian:bookworm-slim")

build_runs = " && ".join(a for k, a in build["ins"] if k == "RUN")
t.check("hack/install-deps.sh" in build_runs, "build stage runs hack/install-deps.sh")
# The profile-guided build (hack/pgo.sh BUILD_DIR TARGET...): its last configure
# and build are the image's, so they are checked in the script.
pgo = re.search(r"bash hack/pgo\.sh (\S+) (.*?)(?:&&|$)", build_runs)
if pgo:
    with open(os.path.join(common.ROOT, "hack", "pgo.sh")) as f:
        script = f.read()
    final = script[script.rfind("cmake "):]
    built = pgo.group(2).split()
    t.check(re.search(r"cmake .*-G Ninja", final) is not None, "the profile-guided build configures with cmake -G Ninja")
    t.check("-DGANTRY_BUILD_TESTS=OFF" in final, "tests are not built into the image")
    t.check("-DGANTRY_PGO=use" in final and "-DCMAKE_BUILD_TYPE=Release" in final,
            "the image's build is Release with the training's counts")
    t.check("gantry-proxy" in built and "gantry-controller" in built, "hack/pgo.sh builds both binaries", str(built))
else:
    t.check(re.search(r"cmake .*-G Ninja", build_runs) is not None, "build stage configures with cmake -G Ninja")
    t.check("-DGANTRY_BUILD_TESTS=OFF" in build_runs, "tests are not built into the image")
    t.check(re.search(r"ninja .*gantry-proxy.*gantry-controller|ninja .*gantry-controller.*gantry-proxy", build_runs)
            is not None, "ninja builds both binaries")

runtime_runs = [a for k, a in runtime["ins"] if k == "RUN"]
packages = []
for run in runtime_runs:
    for cmd in re.split(r"&&|;", run):
        words = shlex.split(cmd)
        if len(words) >= 2 and words[0] == "apt-get" and "install" in words:
            t.check("--no-install-recommends" in words, "apt-get install uses --no-install-recommends")
            packages += [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
t.check(bool(packages), "runtime stage installs packages by name", str(packages))
FORBIDDEN = re.compile(r"(-dev$|^build-essential$|^cmake$|^ninja-build$|^gcc|^g\+\+|^clang|^make$|"
                       r"^pkg-config$|^ccache$|^git$|^lld$|^libclang)")
bad = [p for p in packages if FORBIDDEN.search(p)]
t.check(not bad, "runtime stage installs no build tools or -dev packages", str(bad))
tools = [w for run in runtime_runs for w in ("cmake", "ninja", "gcc", "g++", "clang", "make ")
         if re.search(rf"(^|\s){re.escape(w.strip())}(\s|$)", run)]
t.check(not tools, "runtime stage runs no build tool", str(tools))
copies = [a for k, a in runtime["ins"] if k == "COPY"]
t.check(any("--from=build" in c and c.split()[-1].rstrip("/") == "/usr/local/bin" for c in copies),
        "binaries are copied from the build stage to /usr/local/bin", str(copies))
t.check(any("/usr/local/bin/gantry-proxy" in a and "/usr/local/bin/gantry-controller" in a
            for k, a in build["ins"] if k == "RUN"), "both binaries are staged for /usr/local/bin")
users = [a for k, a in runtime["ins"] if k == "USER"]
t.check(bool(users) and users[-1].split(":")[0] == "65532", "runs as user 65532", str(users))
t.check(any("rm -rf /var/lib/apt/lists" in r for r in runtime_runs), "apt lists are removed")


# ------------------------------------------------------------------ ldd -> dpkg
def owner(path):
    """The Debian package owning path (trying the merged-/usr spellings), or None."""
    real = os.path.realpath(path)
    candidates = []
    for p in (path, real):
        candidates += [p, "/usr" + p if not p.startswith("/usr/") else p[4:]]
    for c in dict.fromkeys(candidates):
        r = common.run(["dpkg", "-S", c])
        if r.returncode == 0 and r.stdout.strip():
            first = r.stdout.strip().splitlines()[0]
            pkg = first.split(": ", 1)[0].split(",")[0].strip()
            return pkg.split(":")[0]
    return None


present = [b for b in BINARIES if os.access(os.path.join(args.bin_dir, b), os.X_OK)]
missing = [b for b in BINARIES if b not in present]
if missing:
    msg = f"not built in {args.bin_dir}: {', '.join(missing)}"
    if common.in_ci():
        t.check(False, "both binaries are built", msg)
    elif not present:
        common.skip_or_fail(msg + " (build them, then run again)")
    else:
        print(f"note: {msg}; checking the others")

needed = {}
for b in present:
    r = common.run(["ldd", os.path.join(args.bin_dir, b)])
    t.check(r.returncode == 0, f"ldd {b}", r.stderr)
    for line in r.stdout.splitlines():
        line = line.strip()
        if "not found" in line:
            t.check(False, f"{b}: every library resolves", line)
            continue
        m = re.match(r"\S+ => (/\S+) \(", line) or re.match(r"(/\S+) \(", line)
        if not m:
            continue  # linux-vdso and friends: no file
        pkg = owner(m.group(1))
        if t.check(pkg is not None, f"{b}: {m.group(1)} belongs to a Debian package"):
            needed.setdefault(pkg, set()).add(f"{b}:{os.path.basename(m.group(1))}")

for pkg in sorted(needed):
    t.check(pkg in packages, f"Dockerfile runtime stage installs {pkg}",
            f"needed by {', '.join(sorted(needed[pkg]))}; add it to the apt-get install list")
if needed:
    print(f"runtime packages derived from ldd: {' '.join(sorted(needed))}")
extra = [p for p in packages if p not in needed]
if extra:
    print(f"note: installed but not linked by the binaries built here: {' '.join(extra)}")
t.finish()
