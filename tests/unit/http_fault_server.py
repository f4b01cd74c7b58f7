#!/usr/bin/env python3
"""A misbehaving HTTPS server for tests/unit/test_http.c (standard library,
plus python3-cryptography or the openssl command to make its certificates).

    python3 http_fault_server.py --workdir DIR

On start it writes into DIR:
  ca.pem            a throwaway CA that signed the server certificate (the
                    test passes it as ca_bundle; without it TLS must fail)
  server.pem/.key   the server certificate: 127.0.0.1, localhost, *.vault.azure.net
  ports             "HTTPS_PORT HTTP_PORT\\n", written last (atomically): the
                    test waits for it

For every request it reads DIR/script.json, an object mapping a path (without
query) to a list of responses, served in order; the last one repeats.  The
counters restart whenever the script file is replaced or changes.  A response is an object:
  status       int, default 200
  headers      {"Name": "value"} or [["Name", "value"], ...] (repeats allowed)
  body         a string; or body_repeat: ["x", 5000] for a big one
  delay        seconds to wait before answering
  reset_after  send the headers (with the full Content-Length) and this many
               body bytes, then reset the connection (TCP RST)
  truncate     send the full Content-Length but only this many bytes, then
               close normally
  chunked      true: Transfer-Encoding: chunked, no Content-Length
  close        true: "Connection: close" and close after the response
A path missing from the script gets a 404 with an ARM error body.

It appends one JSON line per request to DIR/requests.log before answering:
method, path, query, host, user_agent, auth (whether an Authorization header
came: never its value), auth_scheme ("Bearer"), body_len, tls, client_port.
SIGTERM stops it.
"""

import argparse
import datetime
import ipaddress
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_certs_cryptography(d):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kvaudit test CA")])
    ca = (x509.CertificateBuilder()
          .subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=7))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kvaudit test server")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.DNSName("localhost"),
                x509.DNSName("*.vault.azure.net"),
            ]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    with open(os.path.join(d, "ca.pem"), "wb") as f:
        f.write(ca.public_bytes(pem))
    with open(os.path.join(d, "server.pem"), "wb") as f:
        f.write(leaf.public_bytes(pem))
    with open(os.path.join(d, "server.key"), "wb") as f:
        f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def make_certs_openssl(d):
    """The same certificates with the openssl command, when python3-cryptography is missing."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "7", "-subj", "/CN=kvaudit test CA",
        "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=kvaudit test server")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n"
                "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:*.vault.azure.net\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "7", "-extfile", "ext.cnf")


class Script:
    """The per-path response lists, re-read on every request."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.raw = None
        self.data = {}
        self.counts = {}

    def next_response(self, path):
        with self.lock:
            try:
                with open(self.path, "rb") as f:
                    st = os.fstat(f.fileno())
                    raw = (st.st_ino, st.st_mtime_ns, f.read())
            except FileNotFoundError:
                raw = (0, 0, b"{}")
            if raw != self.raw:
                self.raw = raw
                self.data = json.loads(raw[2] or b"{}")
                self.counts = {}
            responses = self.data.get(path)
            if not responses:
                return None
            i = self.counts.get(path, 0)
            self.counts[path] = i + 1
            return responses[min(i, len(responses) - 1)]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "faultserver/1"
    sys_version = ""

    def setup(self):
        # The TLS handshake happens here, in the connection's own thread: a client
        # that rejects the certificate makes this raise, and nothing is logged.
        if self.server.tls_context is not None:
            self.request = self.server.tls_context.wrap_socket(self.request, server_side=True)
        super().setup()

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def _log(self, body_len):
        path, _, query = self.path.partition("?")
        auth = self.headers.get("Authorization")
        entry = {
            "method": self.command,
            "path": path,
            "query": query,
            "host": self.headers.get("Host", ""),
            "user_agent": self.headers.get("User-Agent", ""),
            "auth": auth is not None,
            "auth_scheme": auth.split(" ", 1)[0] if auth else "",
            "content_type": self.headers.get("Content-Type", ""),
            "body_len": body_len,
            "tls": self.server.tls_context is not None,
            "client_port": self.client_address[1],
        }
        with self.server.log_lock:
            with open(self.server.log_path, "a") as f:
                f.write(json.dumps(entry) + "\n")

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        body_in = self.rfile.read(length) if length else b""
        self._log(len(body_in))
        path = self.path.partition("?")[0]
        r = self.server.script.next_response(path)
        if r is None:
            r = {"status": 404, "headers": {"Content-Type": "application/json"},
                 "body": json.dumps({"error": {"code": "NoScript",
                                               "message": "no scripted response for " + path}})}
        if r.get("delay"):
            time.sleep(float(r["delay"]))
        if "body_repeat" in r:
            text, count = r["body_repeat"]
            body = (text * int(count)).encode()
        else:
            body = r.get("body", "").encode()
        headers = r.get("headers", {})
        if isinstance(headers, dict):
            headers = list(headers.items())
        self.send_response(int(r.get("status", 200)))
        for name, value in headers:
            self.send_header(name, value)
        chunked = bool(r.get("chunked"))
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body)))
        if r.get("close"):
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command == "HEAD":
            return
        if "reset_after" in r:
            self.wfile.write(body[: int(r["reset_after"])])
            self.wfile.flush()
            # SO_LINGER 0: close() sends RST instead of FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if "truncate" in r:
            self.wfile.write(body[: int(r["truncate"])])
            self.wfile.flush()
            self.close_connection = True
            return
        if chunked:
            for i in range(0, len(body), 1000):
                piece = body[i:i + 1000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # resets, rejected handshakes and timeouts are what this server is for


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    d = os.path.abspath(args.workdir)
    os.makedirs(d, exist_ok=True)
    try:
        make_certs_cryptography(d)
    except ImportError:
        make_certs_openssl(d)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(os.path.join(d, "server.pem"), os.path.join(d, "server.key"))
    ctx.set_alpn_protocols(["http/1.1"])

    script = Script(os.path.join(d, "script.json"))
    log_lock = threading.Lock()
    servers = []
    for tls in (ctx, None):
        s = Server(("127.0.0.1", 0), Handler)
        s.tls_context = tls
        s.script = script
        s.log_lock = log_lock
        s.log_path = os.path.join(d, "requests.log")
        servers.append(s)
        threading.Thread(target=s.serve_forever, daemon=True).start()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    tmp = os.path.join(d, "ports.tmp")
    with open(tmp, "w") as f:
        f.write("%d %d\n" % (servers[0].server_address[1], servers[1].server_address[1]))
    os.rename(tmp, os.path.join(d, "ports"))
    while not stop.wait(0.5):
        if os.getppid() == 1:  # the test died without stopping us
            break
    for s in servers:
        s.shutdown()
        s.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
