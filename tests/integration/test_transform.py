"""filters.transform through the real proxy (docs/policies.md, "transform"):
JSON clients in front of an XML backend and XML clients in front of a JSON
backend, over HTTP/1.1 (Python http.client) and HTTP/2 (curl
--http2-prior-knowledge).

The backends are small in-test HTTP servers on loopback that parse what they
get with independent parsers (Python's xml.etree and json) and answer in their
own format, so a conversion that the proxy gets wrong shows up as the
backend's 400 or as a wrong echo. The XML backend also has paths that answer
malformed XML, a DOCTYPE with an external entity, a chunked body, a body over
the bound and a gzip-encoded body.
"""

import gzip
import http.server
import json
import re
import socketserver
import subprocess
import threading
import xml.etree.ElementTree as ET

import pytest

from conftest import http_request, sn_cluster, sn_route, sn_rule, sn_snapshot, temporary_dataplane

XML_HOST, JSON_HOST, REQ_ONLY_HOST = "xml.example.com", "json.example.com", "reqonly.example.com"
MAX = 4096


class _Backend(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen = []  # (path, content-type, accept, body) of every request

    def _read(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b""
        type(self).seen.append((self.path, self.headers.get("content-type"), self.headers.get("accept"), body))
        return body

    def _send(self, status, ctype, body, chunked=False, extra=()):
        self.send_response(status)
        if ctype:
            self.send_header("content-type", ctype)
        for k, v in extra:
            self.send_header(k, v)
        if chunked:
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 7):
                part = body[i:i + 7]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args):
        pass


class _XmlBackend(_Backend):
    """Speaks XML: parses a request body as XML (400 if it is not), answers
    <echo> with what it parsed, or canned bodies on special paths."""

    def do_GET(self):
        self._read()
        p = self.path
        if p == "/order":
            self._send(200, "application/xml",
                       b'<?xml version="1.0"?><order id="7"><item sku="a">2</item><item sku="b">1</item>'
                       b'<note/><total currency="EUR">12.50</total></order>', extra=[("etag", '"v1"')])
        elif p == "/chunked":
            self._send(200, "text/xml; charset=utf-8", b"<list><n>1</n><n>2</n><n>3</n></list>", chunked=True)
        elif p == "/malformed":
            self._send(200, "application/xml", b"<a><b></a>")
        elif p == "/xxe":
            self._send(200, "application/xml",
                       b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>')
        elif p == "/big":
            self._send(200, "application/xml", b"<big>" + b"x" * (MAX + 10) + b"</big>")
        elif p == "/gzip":
            self._send(200, "application/xml", gzip.compress(b"<z>1</z>"), extra=[("content-encoding", "gzip")])
        elif p == "/text":
            self._send(200, "text/plain", b"plain <not xml>")
        else:
            self._send(404, "application/xml", b"<error>not found</error>")

    def do_POST(self):
        body = self._read()
        try:
            root = ET.fromstring(body)
        except ET.ParseError as e:
            self._send(400, "text/plain", f"backend: not XML: {e}".encode())
            return
        out = ET.Element("echo", {"root": root.tag, "children": str(len(list(root)))})
        out.append(root)
        self._send(200, "application/xml", ET.tostring(out))


class _JsonBackend(_Backend):
    """Speaks JSON: parses a request body as JSON (400 if it is not), answers
    {"echo": <what it parsed>}."""

    def do_GET(self):
        self._read()
        self._send(200, "application/json", json.dumps({"user": {"id": 3, "tags": ["a", "b"], "x": None}}).encode())

    def do_POST(self):
        body = self._read()
        try:
            v = json.loads(body)
        except ValueError as e:
            self._send(400, "text/plain", f"backend: not JSON: {e}".encode())
            return
        self._send(200, "application/json", json.dumps({"echo": v}).encode())


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


@pytest.fixture(scope="module")
def proxy():
    xml_srv = _Server(("127.0.0.1", 0), _XmlBackend)
    json_srv = _Server(("127.0.0.1", 0), _JsonBackend)
    for s in (xml_srv, json_srv):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    with temporary_dataplane() as dp:
        clusters = [sn_cluster("default/xml:80", [("127.0.0.1", xml_srv.server_address[1])]),
                    sn_cluster("default/json:80", [("127.0.0.1", json_srv.server_address[1])])]
        t_xml = {"backend": "XML", "request": True, "response": True, "maxBodyBytes": MAX,
                 "rootElement": "root", "itemElement": "item"}
        t_json = dict(t_xml, backend="JSON")
        routes = [
            sn_route("xml", [sn_rule("default/xml:80", filters={"transform": t_xml})], hostnames=[XML_HOST]),
            sn_route("json", [sn_rule("default/json:80", filters={"transform": t_json})], hostnames=[JSON_HOST]),
            sn_route("reqonly", [sn_rule("default/xml:80", filters={"transform": dict(t_xml, response=False)})],
                     hostnames=[REQ_ONLY_HOST]),
        ]
        p = dp.proxy(sn_snapshot(1, routes, clusters), workers=1)
        p.workdir = dp.workdir
        yield p
    xml_srv.shutdown()
    json_srv.shutdown()


def req(proxy, host, path, method="GET", body=None, headers=None):
    return http_request(proxy.http_port, path, host=host, method=method, body=body, headers=headers)


def h2(proxy, host, path, method="GET", body=None, headers=()):
    """One HTTP/2 request (curl, h2c prior knowledge): (status, version, headers, body)."""
    hdrs = proxy.workdir / "transform-curl-headers.txt"
    argv = ["curl", "-sS", "--max-time", "20", "--http2-prior-knowledge", "-D", str(hdrs), "-o", "-",
            "-w", "\n%{http_code} %{http_version}", "-H", f"Host: {host}", "-X", method]
    for h in headers:
        argv += ["-H", h]
    if body is not None:
        argv += ["--data-binary", "@-"]
    out = subprocess.run(argv + [f"http://127.0.0.1:{proxy.http_port}{path}"], input=body,
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    data, _, tail = out.stdout.rpartition(b"\n")
    code, ver = tail.decode().split()
    fields = {}
    for line in hdrs.read_text(errors="replace").splitlines()[1:]:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return int(code), ver, fields, data


def transform_count(proxy, route, direction, result):
    m = re.search(r'^gantry_transform_total\{direction="' + direction + r'",result="' + result
                  + r'",route="' + re.escape(route + "#0") + r'"\} (\S+)$', proxy.metrics_text(), re.M)
    return float(m.group(1)) if m else 0.0


# ---------------------------------------------------------------- a JSON client, an XML backend

def test_json_request_reaches_the_xml_backend_as_xml_and_the_answer_comes_back_as_json(proxy):
    before = transform_count(proxy, "default/xml", "request", "transformed")
    _Backend.seen.clear()
    body = json.dumps({"order": {"@id": "7", "item": [{"@sku": "a", "#text": "2"}, {"@sku": "b", "#text": "1"}],
                                 "paid": True, "note": None}}).encode()
    r = req(proxy, XML_HOST, "/orders", "POST", body, {"Content-Type": "application/json"})
    assert r.status == 200, r
    path, ctype, accept, sent = _Backend.seen[-1]
    assert ctype == "application/xml; charset=utf-8" and accept == "application/xml; charset=utf-8"
    root = ET.fromstring(sent)  # what the backend got is XML an independent parser reads
    assert root.tag == "order" and root.get("id") == "7"
    assert [(i.get("sku"), i.text) for i in root.findall("item")] == [("a", "2"), ("b", "1")]
    assert root.find("paid").text == "true" and root.find("note").text is None
    # The XML answer, converted back for the JSON client.
    assert r.headers["content-type"] == "application/json"
    assert int(r.headers["content-length"]) == len(r.body)
    assert "accept" in r.headers.get("vary", "").lower()
    v = json.loads(r.body)
    assert v["echo"]["@root"] == "order" and v["echo"]["@children"] == "4"
    assert v["echo"]["order"]["item"] == [{"@sku": "a", "#text": "2"}, {"@sku": "b", "#text": "1"}]
    assert transform_count(proxy, "default/xml", "request", "transformed") == before + 1


def test_accept_json_converts_an_xml_answer_with_the_documented_mapping(proxy):
    r = req(proxy, XML_HOST, "/order", headers={"Accept": "application/json"})
    assert r.status == 200, r
    assert r.headers["content-type"] == "application/json"
    assert "etag" not in r.headers  # it described the XML representation
    assert json.loads(r.body) == {"order": {"@id": "7", "item": [{"@sku": "a", "#text": "2"},
                                                                    {"@sku": "b", "#text": "1"}],
                                            "note": None, "total": {"@currency": "EUR", "#text": "12.50"}}}


def test_a_client_that_asks_for_xml_gets_the_backend_answer_untouched(proxy):
    for accept in ("application/xml", "*/*", None):
        r = req(proxy, XML_HOST, "/order", headers={"Accept": accept} if accept else {})
        assert r.status == 200 and r.headers["content-type"] == "application/xml", (accept, r)
        assert r.body.startswith(b'<?xml version="1.0"?><order id="7">')
        assert r.headers.get("etag") == '"v1"'


def test_a_chunked_xml_answer_is_converted(proxy):
    r = req(proxy, XML_HOST, "/chunked", headers={"Accept": "application/json"})
    assert r.status == 200 and json.loads(r.body) == {"list": {"n": ["1", "2", "3"]}}
    assert int(r.headers["content-length"]) == len(r.body)


def test_other_content_types_and_encodings_pass_unconverted(proxy):
    r = req(proxy, XML_HOST, "/text", headers={"Accept": "application/json"})
    assert r.status == 200 and r.body == b"plain <not xml>" and r.headers["content-type"] == "text/plain"
    r = req(proxy, XML_HOST, "/gzip", headers={"Accept": "application/json"})
    assert r.status == 200 and gzip.decompress(r.body) == b"<z>1</z>"


def test_a_malformed_json_request_is_400_with_where_it_broke_and_never_reaches_the_backend(proxy):
    before = transform_count(proxy, "default/xml", "request", "refused")
    _Backend.seen.clear()
    r = req(proxy, XML_HOST, "/orders", "POST", b'{"order":\n  {"id": 7,}}', {"Content-Type": "application/json"})
    assert r.status == 400, r
    assert b"line 2, column" in r.body and b"malformed JSON" in r.body, r.body
    assert _Backend.seen == []
    r = req(proxy, XML_HOST, "/orders", "POST", b'{"1bad": 1}', {"Content-Type": "application/json"})
    assert r.status == 400 and b"not an XML element name" in r.body, r.body
    assert transform_count(proxy, "default/xml", "request", "refused") == before + 2


def test_a_request_body_over_the_bound_is_413(proxy):
    _Backend.seen.clear()
    big = json.dumps({"a": "x" * MAX}).encode()
    r = req(proxy, XML_HOST, "/orders", "POST", big, {"Content-Type": "application/json"})
    assert r.status == 413, r
    # Chunked (no Content-Length): refused while it is read.
    status, _, _, _ = h2(proxy, XML_HOST, "/orders", "POST", big, ["Content-Type: application/json"])
    assert status == 413
    assert _Backend.seen == []


def test_a_malformed_or_refused_upstream_body_is_502_and_logged(proxy):
    before = transform_count(proxy, "default/xml", "response", "error")
    for path, why in (("/malformed", b"malformed XML at line 1"), ("/xxe", b"DOCTYPE"),
                      ("/big", b"larger than transform.maxBodyBytes")):
        r = req(proxy, XML_HOST, path, headers={"Accept": "application/json"})
        assert r.status == 502 and why in r.body, (path, r)
        assert r.headers.get("x-gateway-reason") == "transform-error"
    assert transform_count(proxy, "default/xml", "response", "error") == before + 3
    log = (proxy.workdir / "proxy.log").read_text(errors="replace")
    assert "could not be converted" in log


def test_request_only_route_leaves_answers_alone(proxy):
    r = req(proxy, REQ_ONLY_HOST, "/orders", "POST", b'{"a": {"b": 1}}',
            {"Content-Type": "application/json", "Accept": "application/json"})
    assert r.status == 200 and r.headers["content-type"] == "application/xml"
    assert ET.fromstring(r.body).find("a/b").text == "1"


# ---------------------------------------------------------------- an XML client, a JSON backend

def test_xml_request_reaches_the_json_backend_as_json_and_comes_back_as_xml(proxy):
    _Backend.seen.clear()
    body = b'<?xml version="1.0"?><user id="3"><tag>a</tag><tag>b</tag><name>Ann &amp; Bo</name><x/></user>'
    r = req(proxy, JSON_HOST, "/users", "POST", body, {"Content-Type": "application/xml"})
    assert r.status == 200, r
    _, ctype, _, sent = _Backend.seen[-1]
    assert ctype == "application/json"
    assert json.loads(sent) == {"user": {"@id": "3", "tag": ["a", "b"], "name": "Ann & Bo", "x": None}}
    assert r.headers["content-type"] == "application/xml; charset=utf-8"
    root = ET.fromstring(r.body)
    assert root.tag == "echo" and root.find("user").get("id") == "3"
    assert [t.text for t in root.findall("user/tag")] == ["a", "b"]


def test_xml_accept_on_a_json_backend(proxy):
    r = req(proxy, JSON_HOST, "/users/3", headers={"Accept": "application/xml"})
    assert r.status == 200 and r.headers["content-type"] == "application/xml; charset=utf-8"
    assert r.body == b'<?xml version="1.0" encoding="UTF-8"?>\n<user><id>3</id><tags>a</tags><tags>b</tags><x/></user>'


def test_xxe_and_billion_laughs_requests_are_refused(proxy):
    _Backend.seen.clear()
    xxe = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    lol = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
           + b"".join(b'<!ENTITY %c "%s">' % (ord("b") + i, (b"&%c;" % (ord("a") + i)) * 10) for i in range(9))
           + b']><l>&j;</l>')
    for body in (xxe, lol):
        r = req(proxy, JSON_HOST, "/users", "POST", body, {"Content-Type": "application/xml"})
        assert r.status == 400 and b"DOCTYPE" in r.body, r
        assert b"root:" not in r.body
    assert _Backend.seen == []


def test_malformed_xml_request_names_line_and_column(proxy):
    r = req(proxy, JSON_HOST, "/users", "POST", b"<user>\n  <id>3</user>", {"Content-Type": "text/xml"})
    assert r.status == 400 and re.search(rb"malformed XML at line 2, column \d+", r.body), r.body


# ---------------------------------------------------------------- HTTP/2 clients

def test_http2_json_client_in_front_of_the_xml_backend(proxy):
    status, ver, fields, body = h2(proxy, XML_HOST, "/orders", "POST", b'{"order": {"@id": "9", "q": 2}}',
                                   ["Content-Type: application/json"])
    assert (status, ver) == (200, "2"), body
    assert fields["content-type"] == "application/json" and int(fields["content-length"]) == len(body)
    assert json.loads(body)["echo"]["order"] == {"@id": "9", "q": "2"}
    status, _, fields, body = h2(proxy, XML_HOST, "/order", headers=["Accept: application/json"])
    assert status == 200 and json.loads(body)["order"]["@id"] == "7"


def test_http2_xml_client_in_front_of_the_json_backend(proxy):
    status, ver, fields, body = h2(proxy, JSON_HOST, "/users", "POST", b"<u><n>1</n></u>",
                                   ["Content-Type: application/xml"])
    assert (status, ver) == (200, "2"), body
    assert fields["content-type"] == "application/xml; charset=utf-8"
    assert ET.fromstring(body).find("u/n").text == "1"
    status, _, _, body = h2(proxy, JSON_HOST, "/users", "POST", b"<u><n>1</u>", ["Content-Type: application/xml"])
    assert status == 400 and b"malformed XML at line 1" in body
