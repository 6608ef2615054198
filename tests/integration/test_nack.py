"""A snapshot the proxy rejects is NACKed and the last good one keeps serving.

The proxy boots from --snapshot-file (no controller); the test plays the
controller on the control socket with raw frames
(u32 big-endian payload length | u8 type | JSON payload, docs/snapshot-format.md).
"""

import json
import socket

import pytest

from conftest import (FRAME_ACK, FRAME_FULL, FRAME_HELLO, FRAME_NACK, Proxy, count_backends,
                      encode_frame, read_frame, temporary_stack, wait_until)

HOST = "nack.example.com"
GOOD_VERSION = 5
CLUSTER = "default/echo:8080"


def snapshot(version, addr, port, routes=None, clusters=None):
    return {
        "version": version,
        "routes": routes if routes is not None else [
            {"namespace": "default", "name": "good", "kind": "GatewayRoute",
             "creationTimestamp": 1700000000, "hostnames": [HOST],
             "rules": [{"backends": [{"cluster": CLUSTER, "weight": 1}]}]}],
        "clusters": clusters if clusters is not None else [
            {"name": CLUSTER, "endpoints": [{"address": addr, "port": port}]}],
    }


def bad_route(match_path):
    return {"namespace": "default", "name": "bad", "hostnames": ["bad.example.com"],
            "rules": [{"matches": [{"path": match_path}], "backends": [{"cluster": CLUSTER}]}]}


@pytest.fixture(scope="module")
def booted():
    with temporary_stack() as s:
        e = s.echo("echo")
        snap_file = s.workdir / "good-snapshot.json"
        snap_file.write_text(json.dumps(snapshot(GOOD_VERSION, e.addr, e.port)))
        s.proxy = Proxy(s.manager, s.workdir, s.socket_path,
                        extra_args=["--snapshot-file", str(snap_file)])
        s.proxy.start()
        s.proxy.wait_ready()
        s.echo_addr, s.echo_port = e.addr, e.port
        yield s


def connect(stack):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    wait_until(lambda: sock.connect_ex(str(stack.socket_path)) == 0, 5,
               "the control socket to accept")
    return sock


def exchange(stack, payload):
    """Connects as a controller, checks the proxy's HELLO, sends one FULL frame;
    returns (type, decoded payload) of the proxy's answer."""
    with connect(stack) as sock:
        frame_type, hello = read_frame(sock)
        assert frame_type == FRAME_HELLO, (frame_type, hello)
        hello = json.loads(hello)
        sock.sendall(encode_frame(FRAME_FULL, payload))
        frame_type, answer = read_frame(sock)
        return hello, frame_type, json.loads(answer)


def still_serving_good(stack):
    assert count_backends(stack.proxy.http_port, 10, host=HOST) == {"echo": 10}
    assert stack.proxy.config_dump()["version"] == GOOD_VERSION
    assert stack.proxy.ready()


def test_boots_from_snapshot_file(booted):
    still_serving_good(booted)


def test_hello_names_last_applied_version(booted):
    with connect(booted) as sock:
        frame_type, payload = read_frame(sock)
    assert frame_type == FRAME_HELLO
    assert json.loads(payload)["lastVersion"] == GOOD_VERSION


def with_bad_route(version, path_match):
    return lambda a, p: json.dumps(snapshot(version, a, p, routes=[bad_route(path_match)]))


MISSING_CLUSTER_ROUTE = {"namespace": "default", "name": "bad",
                         "rules": [{"backends": [{"cluster": "default/missing:80"}]}]}

# (id, payload builder (echo addr, echo port) -> str, the version the NACK must
#  carry or None when the payload cannot be decoded, substrings of the errors)
BAD = [
    ("path-without-slash", with_bad_route(6, {"type": "PathPrefix", "value": "api"}),
     6, ["default/bad", "path"]),
    ("regex-does-not-compile",
     with_bad_route(7, {"type": "RegularExpression", "value": "/items/([0-9]+"}),
     7, ["default/bad", "path"]),
    ("unknown-cluster",
     lambda a, p: json.dumps(snapshot(8, a, p, routes=[MISSING_CLUSTER_ROUTE])),
     8, ["default/bad", "default/missing:80"]),
    ("endpoint-not-an-ip",
     lambda a, p: json.dumps(snapshot(9, a, p, clusters=[
         {"name": CLUSTER, "endpoints": [{"address": "not-an-ip", "port": p}]}])),
     9, [CLUSTER, "not-an-ip"]),
    ("unknown-enum", with_bad_route(10, {"type": "Prefix", "value": "/api"}),
     None, ["Prefix"]),
    ("wrong-type",
     lambda a, p: json.dumps(dict(snapshot(11, a, p), version="eleven")),
     None, ["version"]),
    ("not-json", lambda a, p: "{this is not json", None, []),
]


@pytest.mark.parametrize("payload,version,expect", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_snapshot_is_nacked_and_last_good_serves(booted, payload, version, expect):
    hello, frame_type, answer = exchange(booted, payload(booted.echo_addr, booted.echo_port))
    assert hello["lastVersion"] == GOOD_VERSION
    assert frame_type == FRAME_NACK, answer
    errors = answer.get("errors", [])
    assert errors, answer
    text = "\n".join(errors)
    for s in expect:
        assert s in text, f"{s!r} not named in NACK errors: {errors}"
    if version is not None:
        assert answer.get("version") == version, answer
    still_serving_good(booted)


def test_good_snapshot_after_nacks_is_acked(booted):
    # Runs last in this module: it replaces the booted snapshot.
    new_host_snapshot = snapshot(20, booted.echo_addr, booted.echo_port)
    new_host_snapshot["routes"][0]["hostnames"] = ["acked.example.com"]
    _, frame_type, answer = exchange(booted, json.dumps(new_host_snapshot))
    assert frame_type == FRAME_ACK, answer
    assert answer["version"] == 20
    assert booted.proxy.config_dump()["version"] == 20
    assert count_backends(booted.proxy.http_port, 5, host="acked.example.com") == {"echo": 5}
    assert booted.proxy.get("/", host=HOST).status == 404

