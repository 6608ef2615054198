"""One bad file or one bad route never takes the other routes down.

- A file with a YAML syntax error is reported by name and line (SNAPSHOT.md,
  standalone mode) and contributes nothing new: its last version that parsed
  stays applied (nothing, if it never parsed); the other files apply.
- A route whose regular expression does not compile is left out with
  Accepted=False and a message naming the field (GATEWAYROUTE.md); the other
  routes serve.
"""

import re

import pytest

from conftest import (CONVERGE_TIMEOUT, count_backends, route_yaml, service_yaml, simple_route,
                      wait_until)

BAD_YAML = """\
apiVersion: gantry.dev/v1alpha1
kind: GatewayRoute
metadata: {name: broken-file, namespace: default}
spec:
  hostnames: ["broken.example.com"]
  rules:
  - backendRefs: [{name: good, port: 8080}
    matches: [
"""

BAD_REGEX_ROUTE = route_yaml("bad-regex", [
    {"matches": [{"path": {"type": "RegularExpression", "value": "/items/([0-9]+"}}],
     "backendRefs": [{"name": "other", "port": 8080}]},
], hostnames=["bad.example.com"])


def good_route(backend):
    return simple_route("good", backend, "good.example.com")


@pytest.fixture
def base(stack):
    for name in ["good", "other"]:
        e = stack.echo(name)
        stack.write(f"00-{name}.yaml", service_yaml(name, [(e.addr, e.port)]))
    stack.write("10-good.yaml", good_route("good"))
    return stack


def assert_not_accepted_naming_path(stack):
    def conditions():
        c = stack.controller.route_conditions("default", "bad-regex")
        return c if c and "Accepted" in c else None
    conds = wait_until(conditions, CONVERGE_TIMEOUT,
                       "default/bad-regex in the controller's /status",
                       on_timeout=lambda: str(stack.controller.status()))
    accepted = conds["Accepted"]
    assert accepted.get("status") in ("False", False), accepted
    message = accepted.get("message", "")
    # The message names the field a user must fix, and the expression.
    assert re.search(r"matches\[0\]\.path", message), message
    assert "/items/([0-9]+" in message, message


def test_bad_files_present_at_start(base):
    base.write("20-broken.yaml", BAD_YAML)
    base.write("30-bad-regex.yaml", BAD_REGEX_ROUTE)
    base.start()
    assert count_backends(base.proxy.http_port, 10, host="good.example.com") == {"good": 10}
    # Neither bad object serves: no route takes these hosts.
    assert base.proxy.get("/", host="broken.example.com").status == 404
    assert base.proxy.get("/items/1", host="bad.example.com").status == 404
    assert_not_accepted_naming_path(base)
    # The broken file is reported by name and line.
    assert re.search(r"20-broken\.yaml:\d+", base.controller.log_text()), base.controller.log_text()


def test_bad_files_added_while_running(base):
    base.start()
    base.wait_for_backend("good", host="good.example.com")
    version = base.proxy.config_dump()["version"]

    # A change that is fine travels together with the bad ones: the good route now
    # points at "other". It must apply even though the other two files are bad.
    base.write("20-broken.yaml", BAD_YAML)
    base.write("30-bad-regex.yaml", BAD_REGEX_ROUTE)
    base.write("10-good.yaml", good_route("other"))
    base.wait_for_backend("other", host="good.example.com")
    assert base.proxy.config_dump()["version"] > version
    assert_not_accepted_naming_path(base)
    wait_until(lambda: re.search(r"20-broken\.yaml:\d+", base.controller.log_text()),
               CONVERGE_TIMEOUT, "the controller to report 20-broken.yaml with a line number",
               on_timeout=lambda: base.controller.log_text())
    assert base.controller.ready()

    # Fixing the route makes it Accepted and serving.
    base.write("30-bad-regex.yaml", BAD_REGEX_ROUTE.replace("/items/([0-9]+", "/items/([0-9]+)"))
    base.wait_for_backend("other", host="bad.example.com", path="/items/12")

    def accepted():
        c = base.controller.route_conditions("default", "bad-regex")
        return c and c.get("Accepted", {}).get("status") in ("True", True)
    wait_until(accepted, CONVERGE_TIMEOUT, "default/bad-regex Accepted=True",
               on_timeout=lambda: str(base.controller.status()))


def test_a_file_broken_on_edit_keeps_serving_its_last_good_version(base):
    """Saving a half-edited file must not take down the routes it served: the
    error is reported and the file's last good version stays applied until
    the file parses again."""
    base.start()
    base.wait_for_backend("good", host="good.example.com")
    base.write("10-good.yaml", good_route("good") + "\n---\n" + BAD_YAML)
    wait_until(lambda: re.search(r"10-good\.yaml: has errors; its last good version",
                                 base.controller.log_text()),
               CONVERGE_TIMEOUT, "the controller to keep 10-good.yaml's last good version",
               on_timeout=lambda: base.controller.log_text())
    assert re.search(r"10-good\.yaml:\d+", base.controller.log_text())
    assert count_backends(base.proxy.http_port, 10, host="good.example.com") == {"good": 10}
    # The fixed file applies (now pointing at "other").
    base.write("10-good.yaml", good_route("other"))
    base.wait_for_backend("other", host="good.example.com")
    # A file deleted while broken is gone, not kept.
    base.write("10-good.yaml", BAD_YAML)
    wait_until(lambda: len(re.findall(r"10-good\.yaml: has errors", base.controller.log_text())) >= 2,
               CONVERGE_TIMEOUT, "the second broken save to be reported")
    assert count_backends(base.proxy.http_port, 10, host="good.example.com") == {"other": 10}
    base.remove("10-good.yaml")
    wait_until(lambda: base.proxy.get("/", host="good.example.com").status == 404, CONVERGE_TIMEOUT,
               "the deleted file's route to go away")
