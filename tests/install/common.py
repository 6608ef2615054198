"""Helpers shared by the install tests (tests/install/*_test.py).

- where the repository is, and where helm / the Kubernetes test binaries are;
- skip handling: a test exits 77 (ctest SKIP_RETURN_CODE) only when a tool is
  absent outside CI; in CI (CI=true) a missing tool is a failure;
- a small validator for the subset of OpenAPI v3 that CRD structural schemas
  use (types, properties, required, enum, pattern, bounds, list types,
  defaults). CEL rules are not evaluated here: apiserver_test.py checks them
  against a real kube-apiserver.

Only the standard library and python3-yaml (Debian) are needed.
"""

import copy
import datetime
import glob
import json
import os
import re
import subprocess
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CRD_PATH = os.path.join(ROOT, "crds", "gantry.dev_gatewayroutes.yaml")
CHART_DIR = os.path.join(ROOT, "charts", "gantry")
EXAMPLES_DIR = os.path.join(ROOT, "manifests", "examples")
TESTDATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "testdata")
SKIP = 77


def in_ci():
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(reason):
    """Skips (exit 77) on a developer machine; fails in CI, where every tool must be present."""
    if in_ci():
        print(f"FAIL: {reason} (CI=true: install tests never skip in CI)")
        sys.exit(1)
    print(f"SKIP: {reason}")
    sys.exit(SKIP)


def testbin_dir():
    """The directory holding helm, etcd and kube-apiserver, or None.

    $GANTRY_TESTBIN wins (hack/test.sh exports `$(hack/testbin.sh | tail -1)`);
    a set-but-wrong GANTRY_TESTBIN is an error, not a skip. Without it, the
    newest complete build in hack/testbin.sh's cache is used (no build is started).
    """
    env = os.environ.get("GANTRY_TESTBIN")
    if env:
        if not os.path.isdir(env):
            print(f"FAIL: GANTRY_TESTBIN={env} is not a directory")
            sys.exit(1)
        return env
    cache = os.environ.get("GANTRY_TESTBIN_DIR", os.path.expanduser("~/.cache/gantry/testbin"))
    dirs = [d for d in glob.glob(os.path.join(cache, "*"))
            if os.path.isfile(os.path.join(d, ".stamp")) and os.access(os.path.join(d, "helm"), os.X_OK)]
    if not dirs:
        return None
    return max(dirs, key=os.path.getmtime)


def require_tool(name):
    """Path of a testbin tool (helm, etcd, kube-apiserver); skips or fails when absent."""
    d = testbin_dir()
    path = os.path.join(d, name) if d else None
    if not path or not os.access(path, os.X_OK):
        if os.environ.get("GANTRY_TESTBIN"):
            print(f"FAIL: {name} missing in GANTRY_TESTBIN={os.environ['GANTRY_TESTBIN']}")
            sys.exit(1)
        skip_or_fail(f"{name} is not built: run `hack/testbin.sh` (or export GANTRY_TESTBIN=<bin dir>)")
    return path


def run(cmd, input=None, check=False, env=None, timeout=300):
    """Runs cmd; returns CompletedProcess with text stdout/stderr."""
    p = subprocess.run(cmd, input=input, capture_output=True, text=True, env=env, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def load_crd():
    docs = load_all(CRD_PATH)
    assert len(docs) == 1, f"{CRD_PATH}: expected one document, got {len(docs)}"
    return docs[0]


def crd_schema(crd=None):
    crd = crd or load_crd()
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return version["schema"]["openAPIV3Schema"]


def example_gateway_routes():
    """(file, document) for every GatewayRoute under manifests/examples/."""
    out = []
    for path in sorted(glob.glob(os.path.join(EXAMPLES_DIR, "**", "*.y*ml"), recursive=True)):
        for doc in load_all(path):
            if isinstance(doc, dict) and doc.get("kind") == "GatewayRoute":
                out.append((os.path.relpath(path, ROOT), doc))
    return out


class Tally:
    """Counts checks; prints one line per failure and the closing 'N passed, N failed'."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {what}" + (f": {detail}" if detail else ""))
        return ok

    def finish(self):
        print(f"{self.name}: {self.passed} passed, {self.failed} failed")
        sys.exit(1 if self.failed or not self.passed else 0)


# ---------------------------------------------------------------- schema

_INT_RANGE = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


def apply_defaults(schema, value):
    """Returns value with the schema's defaults filled in, as the API server does."""
    if isinstance(value, dict) and schema.get("type") == "object":
        out = dict(value)
        for key, sub in schema.get("properties", {}).items():
            if key not in out and "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
            if key in out:
                out[key] = apply_defaults(sub, out[key])
        return out
    if isinstance(value, list) and schema.get("type") == "array" and "items" in schema:
        return [apply_defaults(schema["items"], v) for v in value]
    return value


def _type_ok(t, v):
    if t == "object":
        return isinstance(v, dict)
    if t == "array":
        return isinstance(v, list)
    if t == "string":
        return isinstance(v, str)
    if t == "boolean":
        return isinstance(v, bool)
    if t == "integer":
        return isinstance(v, int) and not isinstance(v, bool)
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    return False


def validate(schema, value, path="", errors=None):
    """Validates value against a structural schema; returns a list of 'path: message'."""
    errors = [] if errors is None else errors
    if value is None and schema.get("nullable"):
        return errors
    if schema.get("x-kubernetes-int-or-string"):
        if not (isinstance(value, str) or _type_ok("integer", value)):
            errors.append(f"{path}: must be an integer or a string")
        return errors
    t = schema.get("type")
    if t and not _type_ok(t, value):
        errors.append(f"{path}: must be of type {t}, got {type(value).__name__}")
        return errors
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: Unsupported value: {json.dumps(value)}: supported values: "
                      + ", ".join(json.dumps(e) for e in schema["enum"]))
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{path}: may not be longer than {schema['maxLength']}")
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(f"{path}: should be at least {schema['minLength']} chars long")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: should match '{schema['pattern']}'")
        if schema.get("format") == "date-time":
            try:
                datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                errors.append(f"{path}: must be an RFC 3339 date-time")
    if _type_ok("number", value):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: should be greater than or equal to {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: should be less than or equal to {schema['maximum']}")
        lo_hi = _INT_RANGE.get(schema.get("format"))
        if lo_hi and not lo_hi[0] <= value <= lo_hi[1]:
            errors.append(f"{path}: out of {schema['format']} range")
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{path}: must have at most {schema['maxItems']} items")
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(f"{path}: should have at least {schema['minItems']} items")
        lt = schema.get("x-kubernetes-list-type")
        if lt == "set":
            seen = []
            for i, v in enumerate(value):
                if v in seen:
                    errors.append(f"{path}[{i}]: Duplicate value: {v!r}")
                seen.append(v)
        elif lt == "map":
            keys = schema.get("x-kubernetes-list-map-keys", [])
            seen = []
            for i, v in enumerate(value):
                k = tuple(v.get(x) for x in keys) if isinstance(v, dict) else v
                if k in seen:
                    errors.append(f"{path}[{i}]: Duplicate value: {k!r}")
                seen.append(k)
        for i, v in enumerate(value):
            validate(schema.get("items", {}), v, f"{path}[{i}]", errors)
    if isinstance(value, dict):
        props = schema.get("properties")
        for r in schema.get("required", []):
            if r not in value:
                errors.append(f"{path}.{r}: Required value".lstrip("."))
        if props is not None:
            for k, v in value.items():
                sub = f"{path}.{k}".lstrip(".")
                if isinstance(k, bool):
                    errors.append(f"{sub}: a YAML 1.1 parser (kubectl's) reads an unquoted key "
                                  f"on/off/yes/no as the boolean {str(k).lower()}: quote it, e.g. \"on\":")
                    continue
                if k in props:
                    validate(props[k], v, sub, errors)
                elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                    errors.append(f'{sub}: unknown field "{sub}"')
    return errors


def validate_object(doc, schema=None):
    """Validates a whole GatewayRoute object (defaults applied first)."""
    schema = schema or crd_schema()
    errors = []
    if doc.get("apiVersion") != "gantry.dev/v1alpha1":
        errors.append(f"apiVersion: want gantry.dev/v1alpha1, got {doc.get('apiVersion')!r}")
    if doc.get("kind") != "GatewayRoute":
        errors.append(f"kind: want GatewayRoute, got {doc.get('kind')!r}")
    meta = doc.get("metadata") or {}
    name = meta.get("name", "")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", str(name)) or len(str(name)) > 253:
        errors.append(f"metadata.name: {name!r} is not a DNS subdomain name")
    return errors + validate(schema, apply_defaults(schema, doc))
