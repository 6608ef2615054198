"""An HTTPS/1.1 test backend for the kube tests, run inside the test hosts'
network namespace (TestHosts.tls_echo): every GET is answered 200 with JSON
{"name", "path", "sni", "client"}: the server name the client sent (SNI, or
null) and the subject CN of the client certificate it presented (or null;
with --client-ca a certificate is asked for and verified, not required).
Prints "listening on ADDR:PORT" once it accepts."""

import argparse
import http.server
import json
import ssl
import sys
import threading


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--listen", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--client-ca")
    args = ap.parse_args()
    host, _, port = args.listen.rpartition(":")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(cafile=args.client_ca)
    lock = threading.Lock()
    snis = {}  # id(SSLObject) -> SNI

    def on_sni(sslobj, name, _ctx):
        with lock:
            snis[id(sslobj)] = name
    ctx.sni_callback = on_sni

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            self.request.do_handshake()
            with lock:
                # The callback gets the SSLSocket (or its SSLObject, by version).
                self.sni = snis.pop(id(self.request), None) or snis.pop(id(self.request._sslobj), None)
            self.client = None
            for rdn in (self.request.getpeercert() or {}).get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        self.client = v
            super().setup()

        def do_GET(self):
            body = json.dumps({"name": args.name, "path": self.path, "sni": self.sni,
                               "client": self.client}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def get_request(self):
            sock, addr = self.socket.accept()
            return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

        def handle_error(self, request, client_address):
            pass  # a failed handshake is expected in some tests

    server = Server((host, int(port)), Handler)
    print(f"tls-echo {args.name}: listening on {args.listen}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
