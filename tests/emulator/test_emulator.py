#!/usr/bin/env python3
"""
Self-tests of the Azure emulator (tests/emulator/emulator.py) over real HTTPS.

    python3 tests/emulator/test_emulator.py [unittest args]

Starts the emulator on the demo scenario (tests/emulator/scenarios/demo.json) in a temporary
directory, talks to it with urllib / http.client trusting only the generated CA, and checks the
token flows, ARM/Graph/Key Vault shapes, paging, errors, state, faults, the request log and fake-az.
Python 3 standard library plus python3-cryptography (to sign a client assertion).
Prints "N passed, N failed" last and exits non-zero when any test failed.
"""
import base64
import copy
import datetime
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATOR = os.path.join(HERE, "emulator.py")
FAKE_AZ = os.path.join(HERE, "fake-az")
SCENARIO = os.path.join(HERE, "scenarios", "demo.json")

T_NW = "3f6b2c8e-5a41-4d7f-9c2e-8b1a7d4e6f20"
T_LOG = "9c1d4e7a-2b36-4f58-a1c9-5e0f3b7d2a84"
T_OLD = "d27a9f14-6c83-4b1e-8f5d-0a3c9e6b1f72"
S_PROD = "8b2e4f71-3c9a-4d6e-b1f0-7a5c2e9d4b13"
S_SHARED = "1d7c5a93-e2b4-4f08-9c6d-3b8a1e7f5c24"
S_LOG = "6a0f9e2c-4b75-4e13-8d29-c5b1f7a3e6d8"
S_OLD = "f3b8d6e2-9a1c-4c57-b4e0-2d7f6a9c1e35"
SCANNER = "6d1f3b8a-92c4-4e57-a0d3-5b7e9c1f2a46"
SCANNER_SECRET = "emulator~Scanner.Secret-9f3a0c7e"
LIMITED = "a7c2e9f4-1d5b-4a83-b6e0-2f8d4c1a9e57"
LIMITED_SECRET = "emulator~Limited.Secret-41b8d2e6"
AVA = "ava.lindqvist@northwindtraders.com"
AVA_PW = "Emulator-Ava-Passw0rd!"
OPS = "ops@nwlogistics.onmicrosoft.com"
OPS_PW = "Emulator-Ops-Passw0rd!"
BMS = "262044b1-e2ce-469f-a196-69ab7ada62d3"
BMS_NW = "7e5c3a91-0d2f-4b6e-a8c4-19f2e6d0b3a5"
ARM_SCOPE = "https://management.core.windows.net//.default"
KV_SCOPE = "https://vault.emulator.test/.default"
RG_SEC = "/subscriptions/%s/resourceGroups/rg-nw-security-weu" % S_PROD
KV_PROD = RG_SEC + "/providers/Microsoft.KeyVault/vaults/kv-nw-prod-weu"
KV_RBAC = RG_SEC + "/providers/Microsoft.KeyVault/vaults/kv-nw-rbac-weu"
KV_DEV = "/subscriptions/%s/resourceGroups/rg-nw-dev-neu/providers/Microsoft.KeyVault/vaults/kv-nw-dev-neu" % S_PROD

with open(os.path.join(HERE, "..", "..", "examples", "demo-estate.json"), encoding="utf-8") as _f:
    DEMO = json.load(_f)

E = {}            # the running emulator: proc, dir, port, base, ctx, info
SEEN_SECRETS = set()   # every token and secret the tests handled, for the log check


def wait_ready(d, proc, tries):
    """The port of an emulator started with --workdir d, and a TLS context trusting its CA; RuntimeError
    with its stderr.txt (if any) when it did not start within tries × 50 ms."""
    ready = os.path.join(d, "ready")
    for _ in range(tries):
        if os.path.exists(ready) or proc.poll() is not None:
            break
        time.sleep(0.05)
    if not os.path.exists(ready):
        proc.kill()
        errf = os.path.join(d, "stderr.txt")
        raise RuntimeError("emulator did not start: " + (open(errf).read() if os.path.exists(errf) else ""))
    return int(open(ready).read()), ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))


def setUpModule():
    d = tempfile.mkdtemp(prefix="kvaudit-emu-")
    errf = open(os.path.join(d, "stderr.txt"), "w")
    proc = subprocess.Popen([sys.executable, EMULATOR, "--scenario", SCENARIO, "--workdir", d, "--port", "0",
                             "--max-seconds", "300"], stdout=subprocess.DEVNULL, stderr=errf)
    port, ctx = wait_ready(d, proc, 300)
    E.update(proc=proc, dir=d, port=port, base="https://127.0.0.1:%d" % port, errf=errf, ctx=ctx,
             info=json.load(open(os.path.join(d, "emulator.json"))))
    SEEN_SECRETS.update({SCANNER_SECRET, LIMITED_SECRET, AVA_PW, OPS_PW, E["info"]["identityHeader"]})


def tearDownModule():
    p = E.get("proc")
    if p is None:
        return
    try:
        call("POST", "/_emulator/shutdown")
        p.wait(timeout=10)
    except Exception:
        p.kill()
        p.wait()
    E["errf"].close()


# ------------------------------------------------------------------------------------------ client helpers
class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


def call(method, url, token=None, body=None, headers=None, form=None, host=None, timeout=20):
    """One HTTPS request; urllib unless host (a Key Vault host name) is given, then http.client with
    SNI and Host set to it while connecting to 127.0.0.1."""
    if not url.startswith("http"):
        url = E["base"] + url
    h = dict(headers or {})
    data = None
    if token:
        h["Authorization"] = "Bearer " + token
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        h["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    if host is None:
        req = urllib.request.Request(url, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, context=E["ctx"], timeout=timeout) as r:
                return Resp(r.status, r.getheaders(), r.read())
        except urllib.error.HTTPError as e:
            return Resp(e.code, e.headers.items(), e.read())
    u = urllib.parse.urlsplit(url)

    class ToLocal(http.client.HTTPSConnection):
        def connect(self):
            sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
            self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
    conn = ToLocal(host, E["port"], context=E["ctx"], timeout=timeout)
    try:
        conn.request(method, u.path + ("?" + u.query if u.query else ""), body=data, headers=h)
        r = conn.getresponse()
        return Resp(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


def token(scope=ARM_SCOPE, tenant=T_NW, client=SCANNER, secret=SCANNER_SECRET):
    r = call("POST", "/login/%s/oauth2/v2.0/token" % tenant,
             form={"grant_type": "client_credentials", "client_id": client, "client_secret": secret, "scope": scope})
    assert r.status == 200, r.body
    t = r.json()["access_token"]
    SEEN_SECRETS.add(t)
    return t


def user_token(scope=ARM_SCOPE, tenant=T_NW, user=AVA, password=AVA_PW):
    r = call("POST", "/login/%s/oauth2/v2.0/token" % tenant,
             form={"grant_type": "password", "client_id": "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
                   "username": user, "password": password, "scope": scope})
    assert r.status == 200, r.body
    t = r.json()["access_token"]
    SEEN_SECRETS.add(t)
    return t


def claims(tok):
    p = tok.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unsigned_jwt(header, payload, sig=b""):
    return b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode()) + "." + b64url(sig)


def arm(path, tok, api, extra=""):
    return call("GET", "/arm%s?api-version=%s%s" % (path, api, extra), token=tok)


def follow(url, tok):
    """Every item of a paged list, and the pages seen."""
    items, pages = [], []
    while url:
        r = call("GET", url, token=tok)
        assert r.status == 200, (url, r.status, r.body)
        doc = r.json()
        pages.append(doc)
        items += doc["value"]
        url = doc.get("nextLink")
    return items, pages


def config(**kw):
    r = call("POST", "/_emulator/config", body=kw)
    assert r.status == 200, r.body
    return r.json()


def faults(*fs):
    r = call("POST", "/_emulator/faults", body=list(fs))
    assert r.status == 200, r.body


def kv_host(vault):
    return "%s.vault.emulator.test" % vault


# ------------------------------------------------------------------------------------------ tests
class TestTokens(unittest.TestCase):
    def test_client_secret(self):
        r = call("POST", "/login/%s/oauth2/v2.0/token" % T_NW,
                 form={"grant_type": "client_credentials", "client_id": SCANNER, "client_secret": SCANNER_SECRET,
                       "scope": ARM_SCOPE})
        self.assertEqual(r.status, 200)
        doc = r.json()
        self.assertEqual(doc["token_type"], "Bearer")
        self.assertIsInstance(doc["expires_in"], int)
        self.assertIsInstance(doc["ext_expires_in"], int)
        c = claims(doc["access_token"])
        SEEN_SECRETS.add(doc["access_token"])
        self.assertEqual(c["aud"], "https://management.core.windows.net/")
        self.assertEqual(c["tid"], T_NW)
        self.assertEqual(c["oid"], "e0a4c7d2-3f19-4b86-9d5e-7a2c1b8f6e03")
        self.assertEqual(c["idtyp"], "app")
        self.assertEqual(c["appid"], SCANNER)
        self.assertGreater(c["exp"], time.time())
        # the same app in another tenant gets that tenant's service principal object ID
        c2 = claims(token(tenant="nwlogistics.onmicrosoft.com"))
        self.assertEqual((c2["tid"], c2["oid"]), (T_LOG, "b5d9e2a7-40c6-4f18-8e3b-c1a7f5d0e924"))
        self.assertEqual(claims(token(scope="https://management.azure.com/.default"))["aud"],
                         "https://management.azure.com")

    def test_bad_secret_and_unknown_tenant(self):
        r = call("POST", "/login/%s/oauth2/v2.0/token" % T_NW,
                 form={"grant_type": "client_credentials", "client_id": SCANNER, "client_secret": "wrong",
                       "scope": ARM_SCOPE})
        self.assertEqual(r.status, 401)
        self.assertEqual(r.json()["error"], "invalid_client")
        self.assertIn("AADSTS7000215", r.json()["error_description"])
        # the limited app has no service principal in Logistics
        r = call("POST", "/login/%s/oauth2/v2.0/token" % T_LOG,
                 form={"grant_type": "client_credentials", "client_id": LIMITED, "client_secret": LIMITED_SECRET,
                       "scope": ARM_SCOPE})
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json()["error"], "unauthorized_client")
        self.assertIn("AADSTS700016", r.json()["error_description"])
        r = call("POST", "/login/%s/oauth2/v2.0/token" % uuid.uuid4(),
                 form={"grant_type": "client_credentials", "client_id": SCANNER, "client_secret": SCANNER_SECRET,
                       "scope": ARM_SCOPE})
        self.assertEqual(r.status, 400)
        self.assertIn("AADSTS90002", r.json()["error_description"])
        r = call("POST", "/login/%s/oauth2/v2.0/token" % T_NW,
                 form={"grant_type": "client_credentials", "client_id": SCANNER, "client_secret": SCANNER_SECRET,
                       "scope": "https://storage.azure.com/.default"})
        self.assertEqual((r.status, r.json()["error"]), (400, "invalid_resource"))

    def _assertion(self, cert_pem, key, aud, iss=SCANNER, exp_in=600, alg="RS256"):
        cert = x509.load_pem_x509_certificate(cert_pem)
        header = {"alg": alg, "typ": "JWT", "x5t": b64url(cert.fingerprint(hashes.SHA1()))}
        now = int(time.time())
        payload = {"aud": aud, "iss": iss, "sub": iss, "jti": str(uuid.uuid4()), "nbf": now, "iat": now,
                   "exp": now + exp_in}
        h = b64url(json.dumps(header).encode())
        p = b64url(json.dumps(payload).encode())
        sig = key.sign((h + "." + p).encode(), padding.PKCS1v15(), hashes.SHA256())
        return h + "." + p + "." + b64url(sig)

    def _assert_call(self, assertion, tenant=T_NW):
        return call("POST", "/login/%s/oauth2/v2.0/token" % tenant,
                    form={"grant_type": "client_credentials", "client_id": SCANNER, "scope": ARM_SCOPE,
                          "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                          "client_assertion": assertion})

    def test_client_assertion_certificate(self):
        app = next(a for a in E["info"]["apps"] if a["clientId"] == SCANNER)
        pem = open(app["certificatePath"], "rb").read()
        cert_pem = pem[: pem.index(b"-----END CERTIFICATE-----") + 25]
        key = serialization.load_pem_private_key(pem, password=None)
        aud = "%s/login/%s/oauth2/v2.0/token" % (E["base"], T_NW)
        r = self._assert_call(self._assertion(cert_pem, key, aud))
        self.assertEqual(r.status, 200, r.body)
        c = claims(r.json()["access_token"])
        SEEN_SECRETS.add(r.json()["access_token"])
        self.assertEqual((c["oid"], c["appidacr"]), ("e0a4c7d2-3f19-4b86-9d5e-7a2c1b8f6e03", "2"))
        # wrong audience, expired, unregistered certificate, tampered signature
        self.assertEqual(self._assert_call(self._assertion(cert_pem, key, E["base"] + "/login/x")).status, 401)
        self.assertEqual(self._assert_call(self._assertion(cert_pem, key, aud, exp_in=-900)).status, 401)
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        import datetime
        from cryptography.x509.oid import NameOID
        n = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "other")])
        now = datetime.datetime.now(datetime.timezone.utc)
        oc = (x509.CertificateBuilder().subject_name(n).issuer_name(n).public_key(other.public_key())
              .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
              .sign(other, hashes.SHA256())).public_bytes(serialization.Encoding.PEM)
        r = self._assert_call(self._assertion(oc, other, aud))
        self.assertEqual(r.status, 401)
        self.assertIn("AADSTS700027", r.json()["error_description"])
        good = self._assertion(cert_pem, key, aud).split(".")
        forged = good[0] + "." + b64url(json.dumps({"aud": aud, "iss": SCANNER, "sub": SCANNER,
                                                    "exp": int(time.time()) + 9999}).encode()) + "." + good[2]
        self.assertEqual(self._assert_call(forged).status, 401)

    def test_federated(self):
        app = next(a for a in E["info"]["apps"] if a["clientId"] == SCANNER)
        jwt = open(app["federatedTokenPath"]).read().strip()
        r = self._assert_call(jwt)
        self.assertEqual(r.status, 200, r.body)
        SEEN_SECRETS.add(r.json()["access_token"])
        now = int(time.time())
        mine = unsigned_jwt({"alg": "none"}, {"iss": "https://token.actions.githubusercontent.com",
                                               "sub": "repo:northwind/kvaudit:ref:refs/heads/main",
                                               "aud": "api://AzureADTokenExchange", "exp": now + 60})
        self.assertEqual(self._assert_call(mine).status, 200)
        bad = unsigned_jwt({"alg": "none"}, {"iss": "https://token.actions.githubusercontent.com",
                                              "sub": "repo:evil/fork:ref:refs/heads/main",
                                              "aud": "api://AzureADTokenExchange", "exp": now + 60})
        r = self._assert_call(bad)
        self.assertEqual(r.status, 400)
        self.assertIn("AADSTS70021", r.json()["error_description"])

    def test_password_member_guest(self):
        c = claims(user_token(tenant=T_NW))
        self.assertEqual((c["oid"], c["idtyp"], c["acct"], c["upn"]),
                         ("5b9e1c3d-7f24-4a86-b0d1-e3c7a5f92b48", "user", 0, AVA))
        self.assertNotIn("idp", c)
        g = claims(user_token(tenant=T_LOG))
        self.assertEqual((g["tid"], g["oid"], g["acct"]), (T_LOG, "2e7f4a1b-c8d3-4e95-9a6f-0b1d5c8e3a72", 1))
        self.assertEqual(g["idp"], "https://sts.windows.net/%s/" % T_NW)
        self.assertNotEqual(g["idp"], g["iss"])
        self.assertEqual(claims(user_token(tenant="organizations"))["tid"], T_NW)
        r = call("POST", "/login/%s/oauth2/v2.0/token" % T_NW,
                 form={"grant_type": "password", "client_id": "x", "username": AVA, "password": "nope",
                       "scope": ARM_SCOPE})
        self.assertEqual((r.status, r.json()["error"]), (400, "invalid_grant"))
        self.assertIn("AADSTS50126", r.json()["error_description"])
        r = call("POST", "/login/%s/oauth2/v2.0/token" % T_OLD,
                 form={"grant_type": "password", "client_id": "x", "username": OPS, "password": OPS_PW,
                       "scope": ARM_SCOPE})
        self.assertEqual(r.status, 400)
        self.assertIn("AADSTS50020", r.json()["error_description"])

    def test_imds_and_app_service(self):
        http_base = E["info"]["imds"]
        url = http_base + "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=" + \
            urllib.parse.quote("https://management.azure.com/")
        try:
            urllib.request.urlopen(urllib.request.Request(url), timeout=10)
            self.fail("IMDS answered without Metadata: true")
        except urllib.error.HTTPError as e:
            self.assertEqual(e.code, 400)
            self.assertEqual(json.load(e)["error"], "invalid_request")
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Metadata": "true"}), timeout=10) as r:
            doc = json.load(r)
        SEEN_SECRETS.add(doc["access_token"])
        self.assertIsInstance(doc["expires_in"], str)
        self.assertIsInstance(doc["expires_on"], str)
        self.assertEqual(doc["resource"], "https://management.azure.com/")
        c = claims(doc["access_token"])
        self.assertEqual((c["oid"], c["tid"]), ("f2b7d4a9-6e1c-4385-9b0f-3a8e5c2d7f14", T_NW))
        # the managed identity's token works on ARM
        self.assertEqual(arm("/subscriptions", doc["access_token"], "2022-12-01").status, 200)
        # the HTTPS listener serves IMDS too; unknown client_id is refused
        r = call("GET", "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net"
                 "&client_id=" + str(uuid.uuid4()), headers={"Metadata": "true"})
        self.assertEqual(r.status, 400)
        ep = E["info"]["identityEndpoint"] + "?api-version=2019-08-01&resource=https://vault.azure.net"
        with urllib.request.urlopen(urllib.request.Request(
                ep, headers={"X-IDENTITY-HEADER": E["info"]["identityHeader"]}), timeout=10) as r:
            doc = json.load(r)
        SEEN_SECRETS.add(doc["access_token"])
        self.assertIsInstance(doc["expires_on"], str)
        self.assertEqual(doc["client_id"], "c3e8a1f5-7b2d-4e96-a4c0-8d5f1b9e2a73")
        try:
            urllib.request.urlopen(urllib.request.Request(ep, headers={"X-IDENTITY-HEADER": "wrong"}), timeout=10)
            self.fail("App Service identity accepted a wrong header")
        except urllib.error.HTTPError as e:
            self.assertEqual(e.code, 401)


class TestArm(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tok = token()

    def test_paging_vaults(self):
        url = "/arm/subscriptions/%s/providers/Microsoft.KeyVault/vaults?api-version=2024-11-01" % S_PROD
        items, pages = follow(url, self.tok)
        want = [v["id"] for v in DEMO["vaults"] if v["id"].lower().startswith("/subscriptions/" + S_PROD)]
        self.assertEqual([v["id"] for v in items], want)
        self.assertGreater(len(pages), 2)
        for p in pages[:-1]:
            self.assertLessEqual(len(p["value"]), 2)
            self.assertTrue(p["nextLink"].startswith(E["base"] + "/arm/subscriptions/"))
            self.assertIn("$skiptoken=", p["nextLink"])
            self.assertIn("api-version=2024-11-01", p["nextLink"])
        self.assertNotIn("nextLink", pages[-1])
        for v in items:
            self.assertTrue(v["id"].startswith("/subscriptions/"))
        # Key Vault URLs are rewritten to the emulator's suffix and port
        self.assertEqual(items[0]["properties"]["vaultUri"], "https://kv-nw-prod-weu.vault.emulator.test/")

    def test_empty_page_and_null_last_link(self):
        config(emptyPage="middle", lastNextLink="null")
        try:
            url = "/arm/subscriptions/%s/providers/Microsoft.Compute/disks?api-version=2024-03-02" % S_PROD
            items, pages = follow(url, self.tok)
            self.assertEqual(pages[1]["value"], [])
            self.assertTrue(pages[1]["nextLink"])
            self.assertIsNone(pages[-1]["nextLink"])
            self.assertEqual(len(items), len([d for d in DEMO["disks"] if S_PROD in d["id"]]))
        finally:
            config(emptyPage="none", lastNextLink="absent")

    def test_next_link_base_and_concurrency(self):
        config(nextLinkBase="https://evil.example:8443")
        try:
            r = arm("/subscriptions/%s/providers/Microsoft.Compute/disks" % S_PROD, self.tok, "2024-03-02")
            self.assertTrue(r.json()["nextLink"].startswith("https://evil.example:8443/arm/subscriptions/"))
        finally:
            config(nextLinkBase=None)
        import concurrent.futures
        url = "/arm/subscriptions/%s/providers/Microsoft.Compute/virtualMachines?api-version=2024-07-01" % S_PROD
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            results = list(ex.map(lambda _: len(follow(url, self.tok)[0]), range(32)))
        self.assertEqual(set(results), {len([v for v in DEMO["virtualMachines"] if S_PROD in v["id"]])})

    def test_api_versions(self):
        r = arm("/subscriptions/%s/providers/Microsoft.Compute/virtualMachines" % S_PROD, self.tok, "2023-03-01")
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json()["error"]["code"], "InvalidApiVersionParameter")
        self.assertIn("'2024-07-01'", r.json()["error"]["message"])
        r = call("GET", "/arm/subscriptions", token=self.tok)
        self.assertEqual((r.status, r.json()["error"]["code"]), (400, "MissingApiVersionParameter"))

    def test_unauthorized(self):
        r = arm("/subscriptions", None, "2022-12-01")
        self.assertEqual(r.status, 401)
        self.assertIn('error="invalid_token"', r.header("WWW-Authenticate"))
        self.assertIn("authorization_uri=", r.header("WWW-Authenticate"))
        r = arm("/subscriptions", "not.a.token", "2022-12-01")
        self.assertEqual((r.status, r.json()["error"]["code"]), (401, "InvalidAuthenticationToken"))
        r = arm("/subscriptions", token(scope="https://graph.microsoft.com/.default"), "2022-12-01")
        self.assertEqual((r.status, r.json()["error"]["code"]), (401, "InvalidAuthenticationToken"))
        self.assertIn("wrong audience", r.json()["error"]["message"])
        config(tokenLifetime=1)
        try:
            short = token()
        finally:
            config(tokenLifetime=3599)
        time.sleep(1.5)
        r = arm("/subscriptions", short, "2022-12-01")
        self.assertEqual((r.status, r.json()["error"]["code"]), (401, "ExpiredAuthenticationToken"))
        self.assertIsNotNone(r.header("WWW-Authenticate"))

    def test_tenant_isolation(self):
        subs, _ = follow("/arm/subscriptions?api-version=2022-12-01", self.tok)
        self.assertEqual({s["subscriptionId"] for s in subs}, {S_PROD, S_SHARED})
        log_tok = token(tenant=T_LOG)
        subs, _ = follow("/arm/subscriptions?api-version=2022-12-01", log_tok)
        self.assertEqual([s["subscriptionId"] for s in subs], [S_LOG])
        r = arm("/subscriptions/%s/providers/Microsoft.Compute/virtualMachines" % S_LOG, self.tok, "2024-07-01")
        self.assertEqual((r.status, r.json()["error"]["code"]), (401, "InvalidAuthenticationTokenTenant"))
        tenants, _ = follow("/arm/tenants?api-version=2022-12-01", self.tok)
        self.assertEqual({t["tenantId"] for t in tenants}, {T_NW, T_LOG, T_OLD})
        # the limited app sees one subscription and is refused the other
        lim = token(client=LIMITED, secret=LIMITED_SECRET)
        subs, _ = follow("/arm/subscriptions?api-version=2022-12-01", lim)
        self.assertEqual([s["subscriptionId"] for s in subs], [S_PROD])
        r = arm("/subscriptions/%s/providers/Microsoft.KeyVault/vaults" % S_SHARED, lim, "2024-11-01")
        self.assertEqual((r.status, r.json()["error"]["code"]), (403, "AuthorizationFailed"))
        tenants, _ = follow("/arm/tenants?api-version=2022-12-01", lim)
        self.assertEqual([t["tenantId"] for t in tenants], [T_NW])

    def test_vm_expand_instance_view(self):
        vms, _ = follow("/arm/subscriptions/%s/providers/Microsoft.Compute/virtualMachines?api-version=2024-07-01"
                        % S_PROD, self.tok)
        self.assertEqual(len(vms), len([v for v in DEMO["virtualMachines"] if S_PROD in v["id"]]))
        self.assertFalse(any("instanceView" in v["properties"] for v in vms))
        db = next(v for v in vms if v["name"] == "nw-erp-db01")
        r = call("GET", "/arm%s?$expand=instanceView&api-version=2024-07-01" % db["id"], token=self.tok)
        self.assertEqual(r.status, 200, r.body)
        doc = r.json()
        self.assertIn("instanceView", doc["properties"])
        self.assertIn("AzureDiskEncryption", [e["name"] for e in doc["resources"]])
        self.assertEqual(doc["resources"][0]["type"], "Microsoft.Compute/virtualMachines/extensions")
        r = call("GET", "/arm%s?api-version=2024-07-01" % db["id"].upper().replace("/SUBSCRIPTIONS/", "/subscriptions/"),
                 token=self.tok)
        self.assertEqual(r.status, 200)
        self.assertNotIn("instanceView", r.json()["properties"])
        r = call("GET", "/arm%s-nope?api-version=2024-07-01" % db["id"], token=self.tok)
        self.assertEqual((r.status, r.json()["error"]["code"]), (404, "ResourceNotFound"))

    def test_vm_list_status_only_and_extensions(self):
        base = "/arm/subscriptions/%s/providers/Microsoft.Compute/virtualMachines?api-version=2024-07-01" % S_PROD
        vms, _ = follow(base, self.tok)
        db = next(v for v in vms if v["name"] == "nw-erp-db01")
        # the list gives extensions as bare IDs (vmListExtensions "ids", the default)
        self.assertTrue(db["resources"] and all(list(e) == ["id"] for e in db["resources"]))
        status, _ = follow(base + "&statusOnly=true", self.tok)
        self.assertEqual([v["id"] for v in status], [v["id"] for v in vms])
        sdb = next(v for v in status if v["name"] == "nw-erp-db01")
        self.assertEqual(list(sdb["properties"]), ["instanceView"])
        self.assertNotIn("storageProfile", sdb["properties"])
        for q, code in (("&$expand=instanceView", "InvalidParameter"), ("&statusOnly=maybe", "InvalidParameter"),
                        ("&$filter=x", "InvalidParameter")):
            r = call("GET", base + q, token=self.tok)
            self.assertEqual((r.status, r.json()["error"]["code"]), (400, code), q)
        r = arm(db["id"] + "/extensions", self.tok, "2024-07-01")
        self.assertEqual(r.status, 200, r.body)
        exts = r.json()["value"]
        self.assertEqual(sorted(e["id"] for e in exts), sorted(e["id"] for e in db["resources"]))
        ade = next(e for e in exts if e["properties"].get("type") == "AzureDiskEncryption")
        r = arm(db["id"] + "/extensions/" + ade["name"], self.tok, "2024-07-01")
        self.assertEqual(r.json(), ade)
        r = arm(db["id"] + "/extensions/nope", self.tok, "2024-07-01")
        self.assertEqual((r.status, r.json()["error"]["code"]), (404, "NotFound"))

    def test_role_assignments_and_definitions(self):
        url = "/arm%s/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=atScope()" % KV_RBAC
        items, _ = follow(url, self.tok)
        self.assertEqual([a["name"] for a in items], ["bb6f511e-b759-4f26-8c94-f123eaf20fed"])
        bi = "/subscriptions/%s/resourceGroups/rg-nw-bi-weu/providers/Microsoft.KeyVault/vaults/kv-nw-bi-weu" % S_PROD
        items, _ = follow("/arm%s/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01"
                          "&$filter=atScope()" % bi, self.tok)
        self.assertEqual([a["name"] for a in items], ["fdaf1f86-60c5-43da-9e5e-c332ec16cd9a"])
        r = arm("/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/"
                "5e2a7c94-1b3f-4d86-a0e5-c9f4b1d72e38" % S_PROD, self.tok, "2022-04-01")
        self.assertEqual(r.json()["properties"]["roleName"], "Northwind Backup Key Vault Operator")
        r = arm("/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s" % (S_PROD, uuid.uuid4()),
                self.tok, "2022-04-01")
        self.assertEqual(r.status, 404)

    def test_protected_items_by_vault(self):
        rsv = "/subscriptions/%s/resourceGroups/rg-nw-backup-weu/providers/Microsoft.RecoveryServices/vaults/" \
              "rsv-nw-prod-weu" % S_PROD
        flt = "&$filter=" + urllib.parse.quote("backupManagementType eq 'AzureIaasVM' and itemType eq 'VM'")
        items, pages = follow("/arm%s/backupProtectedItems?api-version=2024-10-01%s" % (rsv, flt), self.tok)
        self.assertEqual(len(items), 8)
        self.assertIn("$filter=", pages[0]["nextLink"])
        rsvs, _ = follow("/arm/subscriptions/%s/providers/Microsoft.RecoveryServices/vaults?api-version=2025-02-01"
                         % S_PROD, self.tok)
        self.assertEqual(len(rsvs), 2)


class TestBackupEvidence(unittest.TestCase):
    """Jobs_List, ProtectionPolicies_List, the Activity Log and Graph users (docs/azure-api.md)."""
    RSV = ("/subscriptions/%s/resourceGroups/rg-nw-backup-weu/providers/Microsoft.RecoveryServices/vaults/"
           "rsv-nw-prod-weu" % S_PROD)

    @classmethod
    def setUpClass(cls):
        cls.tok = token()

    def window(self, hours):
        import datetime
        now = datetime.datetime.now(datetime.timezone.utc)
        fmt = "%Y-%m-%d %I:%M:%S %p"
        return "&$filter=" + urllib.parse.quote(
            "backupManagementType eq 'AzureIaasVM' and startTime eq '%s' and endTime eq '%s'" % (
                (now - datetime.timedelta(hours=hours)).strftime(fmt), now.strftime(fmt)))

    def test_jobs_in_a_window_with_paging(self):
        want = [j["id"] for j in DEMO["backupJobs"] if "/vaults/rsv-nw-prod-weu/" in j["id"]]
        items, pages = follow("/arm%s/backupJobs?api-version=2024-10-01%s" % (self.RSV, self.window(24 * 7)), self.tok)
        self.assertEqual(sorted(j["id"] for j in items), sorted(want))
        self.assertGreater(len(pages), 2)
        self.assertIn("$filter=", pages[0]["nextLink"])
        self.assertEqual(items[0]["properties"]["jobType"], "AzureIaaSVMJob")
        # The times moved with the clock: what started 2 days before collectedAt started 2 days ago.
        recent, _ = follow("/arm%s/backupJobs?api-version=2024-10-01%s" % (self.RSV, self.window(36)), self.tok)
        self.assertTrue(0 < len(recent) < len(items), (len(recent), len(items)))
        r = arm(self.RSV + "/backupJobs", self.tok, "2024-10-01", "&$filter=" + urllib.parse.quote("vmName eq 'x'"))
        self.assertEqual((r.status, r.json()["error"]["code"]), (400, "BMSUserErrorInvalidFilter"))
        r = arm(self.RSV.replace("rsv-nw-prod-weu", "rsv-none") + "/backupJobs", self.tok, "2024-10-01")
        self.assertEqual((r.status, r.json()["error"]["code"]), (404, "ResourceNotFound"))

    def test_policies(self):
        flt = "&$filter=" + urllib.parse.quote("backupManagementType eq 'AzureIaasVM'")
        items, _ = follow("/arm%s/backupPolicies?api-version=2024-10-01%s" % (self.RSV, flt), self.tok)
        self.assertEqual(sorted(p["name"] for p in items), ["EnhancedPolicy-Daily", "EnhancedPolicy-Hourly4h"])

    def test_activity_log_patterns(self):
        import datetime
        now = datetime.datetime.now(datetime.timezone.utc)
        t = lambda d: (now - datetime.timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ")
        base = "/arm/subscriptions/%s/providers/Microsoft.Insights/eventtypes/management/values" % S_PROD
        flt = "eventTimestamp ge '%s' and eventTimestamp le '%s' and resourceGroupName eq 'rg-nw-backup-weu'" % (
            t(89), t(0))
        items, _ = follow("%s?api-version=2015-04-01&$filter=%s" % (base, urllib.parse.quote(flt)), self.tok)
        self.assertEqual(len(items), 2)
        self.assertEqual({e["operationName"]["value"] for e in items},
                         {"Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/write"})
        r = call("GET", "%s?api-version=2015-04-01&$filter=%s" % (base, urllib.parse.quote(
            "resourceGroupName eq 'rg-nw-backup-weu'")), token=self.tok)
        self.assertEqual(r.status, 400)
        r = call("GET", "%s?api-version=2015-04-01&$filter=%s" % (base, urllib.parse.quote(
            "eventTimestamp ge '%s'" % t(120))), token=self.tok)
        self.assertEqual(r.status, 400)

    def test_graph_users(self):
        scope = E["base"] + "/graph/.default"
        tok = token(scope=scope, tenant=T_LOG)
        r = call("GET", "/graph/v1.0/users/2e7f4a1b-c8d3-4e95-9a6f-0b1d5c8e3a72?$select=id,userType", token=tok)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual((r.json()["id"], r.json()["userType"]), ("2e7f4a1b-c8d3-4e95-9a6f-0b1d5c8e3a72", "Guest"))
        r = call("GET", "/graph/v1.0/users/%s" % uuid.uuid4(), token=tok)
        self.assertEqual((r.status, r.json()["error"]["code"]), (404, "Request_ResourceNotFound"))


class TestGraph(unittest.TestCase):
    def test_me(self):
        scope = E["base"] + "/graph/.default"
        t = user_token(scope=scope, tenant=T_LOG)
        r = call("GET", "/graph/v1.0/me?$select=id,userType,userPrincipalName,displayName", token=t)
        self.assertEqual(r.status, 200, r.body)
        doc = r.json()
        self.assertEqual((doc["id"], doc["userType"]), ("2e7f4a1b-c8d3-4e95-9a6f-0b1d5c8e3a72", "Guest"))
        self.assertIn("#users(id,userType,userPrincipalName,displayName)/$entity", doc["@odata.context"])
        r = call("GET", "/graph/v1.0/me", token=user_token(scope=scope, tenant=T_NW))
        self.assertNotIn("userType", r.json())   # returned only on $select
        r = call("GET", "/graph/v1.0/me", token=token(scope="https://graph.microsoft.com/.default"))
        self.assertEqual((r.status, r.json()["error"]["code"]), (400, "BadRequest"))

    def test_service_principal(self):
        scope = E["base"] + "/graph/.default"
        path = "/graph/v1.0/servicePrincipals(appId='%s')?$select=id,appId,displayName" % BMS
        r = call("GET", path, token=token(scope=scope, tenant=T_NW))
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["id"], BMS_NW)
        self.assertEqual(set(r.json()) - {"@odata.context"}, {"id", "appId", "displayName"})
        r = call("GET", path, token=token(scope=scope, tenant=T_OLD))
        self.assertEqual((r.status, r.json()["error"]["code"]), (404, "Request_ResourceNotFound"))
        r = call("GET", path, token=token(scope=ARM_SCOPE, tenant=T_NW))
        self.assertEqual(r.status, 401)


class TestKeyVault(unittest.TestCase):
    KID = "nw-erp-kek/e2a214e8bbe9c6751d52490575ffc53d"

    def test_key_bundle(self):
        t = token(scope=KV_SCOPE)
        r = call("GET", "/keys/%s?api-version=7.4" % self.KID, token=t, host=kv_host("kv-nw-prod-weu"))
        self.assertEqual(r.status, 200, r.body)
        doc = r.json()
        self.assertEqual(doc["key"]["kid"], "https://kv-nw-prod-weu.vault.emulator.test/keys/%s" % self.KID)
        r = call("GET", "/keys/nw-web02-ade-cert/4b2770ae7d76e84ab902b21b2a004bc9?api-version=7.4", token=t,
                 host=kv_host("kv-nw-rbac-weu"))
        self.assertIs(r.json()["managed"], True)
        r = call("GET", "/keys/nope/0?api-version=7.4", token=t, host=kv_host("kv-nw-prod-weu"))
        self.assertEqual((r.status, r.json()["error"]["code"]), (404, "KeyNotFound"))
        r = call("GET", "/keys/%s?api-version=2016-10-01" % self.KID, token=t, host=kv_host("kv-nw-prod-weu"))
        self.assertEqual(r.status, 400)
        r = call("GET", "/keys/%s?api-version=7.4" % self.KID, host=kv_host("kv-nw-prod-weu"))
        self.assertEqual(r.status, 401)
        self.assertIn("resource=", r.header("WWW-Authenticate"))
        r = call("GET", "/keys/%s?api-version=7.4" % self.KID, token=token(), host=kv_host("kv-nw-prod-weu"))
        self.assertEqual(r.status, 401)     # an ARM token
        r = call("GET", "/keys/%s?api-version=7.4" % self.KID, token=token(scope=KV_SCOPE, tenant=T_LOG),
                 host=kv_host("kv-nw-prod-weu"))
        self.assertEqual(r.status, 401)     # the wrong tenant
        self.assertIn("AKV10032", r.json()["error"]["message"])

    def test_forbidden(self):
        t = token(scope=KV_SCOPE)
        config(dataPlane={"mode": "open", "deny": [{"vault": "kv-nw-prod-weu", "objectId": "*"}]})
        try:
            r = call("GET", "/keys/%s?api-version=7.4" % self.KID, token=t, host=kv_host("kv-nw-prod-weu"))
            self.assertEqual((r.status, r.json()["error"]["code"]), (403, "Forbidden"))
        finally:
            config(dataPlane={"mode": "open"})
        config(dataPlane={"mode": "policy"})
        try:
            r = call("GET", "/keys/%s?api-version=7.4" % self.KID, token=t, host=kv_host("kv-nw-prod-weu"))
            self.assertEqual(r.status, 403)     # the scanner has no access policy on the vault
            self.assertEqual(r.json()["error"]["innererror"]["code"], "AccessDenied")
        finally:
            config(dataPlane={"mode": "open"})
        lim = token(scope=KV_SCOPE, client=LIMITED, secret=LIMITED_SECRET)
        r = call("GET", "/keys/%s?api-version=7.4" % self.KID, token=lim, host=kv_host("kv-nw-prod-weu"))
        self.assertEqual(r.status, 403)


class TestWrites(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tok = token()

    def put_policy(self, op, entries, vault=KV_DEV, tok=None):
        return call("PUT", "/arm%s/accessPolicies/%s?api-version=2024-11-01" % (vault, op), token=tok or self.tok,
                    body={"properties": {"accessPolicies": entries}})

    def state(self, name):
        r = call("GET", "/_emulator/state/vaults/" + name)
        self.assertEqual(r.status, 200)
        return r.json()["properties"]["accessPolicies"]

    def test_access_policy_semantics(self):
        oid = str(uuid.uuid4())
        before = len(self.state("kv-nw-dev-neu"))
        e = {"tenantId": T_NW, "objectId": oid, "permissions": {"keys": ["Get", "List"], "secrets": ["Get"]}}
        r = self.put_policy("add", [e])
        self.assertEqual(r.status, 200, r.body)
        self.assertTrue(r.json()["id"].endswith("/kv-nw-dev-neu/accessPolicies/"))
        self.assertEqual(r.json()["type"], "Microsoft.KeyVault/vaults/accessPolicies")
        # add merges case-insensitively and keeps the stored casing
        r = self.put_policy("add", [{"tenantId": T_NW, "objectId": oid.upper(),
                                     "permissions": {"keys": ["get", "backup"], "secrets": ["backup"]}}])
        self.assertEqual(r.status, 200, r.body)
        mine = [p for p in self.state("kv-nw-dev-neu") if p["objectId"].lower() == oid]
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine[0]["permissions"]["keys"], ["Get", "List", "backup"])
        self.assertEqual(mine[0]["permissions"]["secrets"], ["Get", "backup"])
        self.assertEqual(len(self.state("kv-nw-dev-neu")), before + 1)
        # the vault as ARM serves it shows the change
        v = arm(KV_DEV, self.tok, "2024-11-01").json()
        self.assertIn(oid, [p["objectId"] for p in v["properties"]["accessPolicies"]])
        # remove is case-sensitive: a casing mismatch is a silent no-op
        r = self.put_policy("remove", [{"tenantId": T_NW, "objectId": oid, "permissions": {"keys": ["get", "list"]}}])
        self.assertEqual(r.status, 200)
        mine = [p for p in self.state("kv-nw-dev-neu") if p["objectId"] == oid][0]
        self.assertEqual(mine["permissions"]["keys"], ["Get", "List", "backup"])
        r = self.put_policy("remove", [{"tenantId": T_NW, "objectId": oid, "permissions": {"keys": ["Get", "List"]}}])
        mine = [p for p in self.state("kv-nw-dev-neu") if p["objectId"] == oid][0]
        self.assertEqual(mine["permissions"]["keys"], ["backup"])
        # replace sets exactly
        self.put_policy("replace", [{"tenantId": T_NW, "objectId": oid, "permissions": {"keys": ["unwrapKey"]}}])
        mine = [p for p in self.state("kv-nw-dev-neu") if p["objectId"] == oid][0]
        self.assertEqual(mine["permissions"], {"keys": ["unwrapKey"]})
        # removing the last permission deletes the entry
        self.put_policy("remove", [{"tenantId": T_NW, "objectId": oid, "permissions": {"keys": ["unwrapKey"]}}])
        self.assertFalse([p for p in self.state("kv-nw-dev-neu") if p["objectId"] == oid])
        self.assertEqual(len(self.state("kv-nw-dev-neu")), before)

    def test_access_policy_errors(self):
        r = call("PUT", "/arm%s/accessPolicies/add?api-version=2024-11-01" % KV_DEV, token=self.tok, body=b"{not json")
        self.assertEqual(r.status, 400)
        r = self.put_policy("add", [{"tenantId": T_NW, "permissions": {"keys": ["get"]}}])
        self.assertEqual(r.status, 400)
        r = call("PUT", "/arm%s/accessPolicies/add?api-version=2023-07-01" % KV_DEV, token=self.tok,
                 body={"properties": {"accessPolicies": []}})
        self.assertEqual(r.json()["error"]["code"], "InvalidApiVersionParameter")
        lim = token(client=LIMITED, secret=LIMITED_SECRET)
        r = self.put_policy("add", [{"tenantId": T_NW, "objectId": BMS_NW, "permissions": {"keys": ["get"]}}], tok=lim)
        self.assertEqual((r.status, r.json()["error"]["code"]), (403, "AuthorizationFailed"))

    def test_role_assignment_put_delete(self):
        name = str(uuid.uuid4())
        url = "/arm%s/providers/Microsoft.Authorization/roleAssignments/%s?api-version=2022-04-01" % (KV_RBAC, name)
        body = {"properties": {"roleDefinitionId": "/subscriptions/%s/providers/Microsoft.Authorization/"
                               "roleDefinitions/5e2a7c94-1b3f-4d86-a0e5-c9f4b1d72e38" % S_PROD,
                               "principalId": BMS_NW, "principalType": "ServicePrincipal"}}
        r = call("PUT", url, token=self.tok, body=body)
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(r.json()["properties"]["scope"], KV_RBAC)
        items, _ = follow("/arm%s/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01"
                          "&$filter=atScope()" % KV_RBAC, self.tok)
        self.assertIn(name, [a["name"] for a in items])
        other = url.replace(name, str(uuid.uuid4()))
        r = call("PUT", other, token=self.tok, body=body)
        self.assertEqual((r.status, r.json()["error"]["code"]), (409, "RoleAssignmentExists"))
        r = call("DELETE", url, token=self.tok)
        self.assertEqual(r.status, 200)
        r = call("DELETE", url, token=self.tok)
        self.assertEqual(r.status, 204)
        bad = dict(body["properties"], principalId=str(uuid.uuid4()))
        bad.pop("principalType")
        r = call("PUT", url, token=self.tok, body={"properties": bad})
        self.assertEqual((r.status, r.json()["error"]["code"]), (400, "PrincipalNotFound"))


class TestFaults(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tok = token()

    def tearDown(self):
        call("DELETE", "/_emulator/faults")

    SUBS = "/arm/subscriptions?api-version=2022-12-01"

    def test_throttle_then_ok(self):
        faults({"match": {"method": "GET", "pathRegex": "^/arm/subscriptions$"}, "times": 2,
                "action": {"status": 429, "Retry-After": 3}})
        faults({"match": {"pathRegex": "^/arm/tenants"}, "times": 1, "status": 429, "retryAfter": 1})
        r = call("GET", self.SUBS, token=self.tok)
        self.assertEqual(r.status, 429)
        self.assertEqual(r.header("Retry-After"), "3")
        self.assertEqual(r.json()["error"]["code"], "SubscriptionRequestsThrottled")
        self.assertEqual(call("GET", self.SUBS, token=self.tok).status, 429)
        self.assertEqual(call("GET", self.SUBS, token=self.tok).status, 200)
        r = call("GET", "/arm/tenants?api-version=2022-12-01", token=self.tok)
        self.assertEqual((r.status, r.header("Retry-After")), (429, "1"))

    def test_5xx_custom_body_and_host(self):
        faults({"match": {"host": r"^kv-nw-prod-weu\."}, "status": 503, "body": {"error": {"code": "X", "message": "y"}}})
        t = token(scope=KV_SCOPE)
        r = call("GET", "/keys/%s?api-version=7.4" % TestKeyVault.KID, token=t, host=kv_host("kv-nw-apps-weu"))
        self.assertEqual(r.status, 404)   # the fault's host does not match this vault
        r = call("GET", "/keys/%s?api-version=7.4" % TestKeyVault.KID, token=t, host=kv_host("kv-nw-prod-weu"))
        self.assertEqual((r.status, r.json()["error"]["code"]), (503, "X"))
        faults({"match": {"pathRegex": "/oauth2/v2.0/token$"}, "status": 500})
        r = call("POST", "/login/%s/oauth2/v2.0/token" % T_NW,
                 form={"grant_type": "client_credentials", "client_id": SCANNER, "client_secret": SCANNER_SECRET,
                       "scope": ARM_SCOPE})
        self.assertEqual((r.status, r.json()["error"]), (500, "server_error"))

    def test_latency(self):
        faults({"match": {"pathRegex": "^/arm/subscriptions$"}, "latencyMs": 400})
        t0 = time.time()
        r = call("GET", self.SUBS, token=self.tok)
        self.assertEqual(r.status, 200)
        self.assertGreaterEqual(time.time() - t0, 0.39)

    def test_reset(self):
        faults({"match": {"pathRegex": "^/arm/subscriptions$"}, "reset": True})
        with self.assertRaises((ConnectionError, http.client.HTTPException, urllib.error.URLError, ssl.SSLError,
                                OSError)):
            call("GET", self.SUBS, token=self.tok)
        self.assertEqual(call("GET", self.SUBS, token=self.tok).status, 200)

    def test_truncate(self):
        faults({"match": {"pathRegex": "^/arm/subscriptions$"}, "truncate": True})
        with self.assertRaises((http.client.IncompleteRead, ConnectionError, ssl.SSLError, OSError,
                                urllib.error.URLError)):
            r = call("GET", self.SUBS, token=self.tok)
            json.loads(r.body)   # urllib may hand back the partial body on some versions
        self.assertEqual(call("GET", self.SUBS, token=self.tok).status, 200)

    def test_malformed(self):
        faults({"match": {"pathRegex": "^/arm/subscriptions$"}, "malformed": True})
        r = call("GET", self.SUBS, token=self.tok)
        self.assertEqual(r.status, 200)
        with self.assertRaises(ValueError):
            r.json()

    def test_expire_tokens(self):
        tok = token()
        faults({"match": {"pathRegex": "^/arm/subscriptions$"}, "expireTokens": True})
        r = call("GET", self.SUBS, token=tok)
        self.assertEqual((r.status, r.json()["error"]["code"]), (401, "ExpiredAuthenticationToken"))
        r = call("GET", self.SUBS, token=tok)
        self.assertEqual(r.status, 401)
        self.assertEqual(call("GET", self.SUBS, token=token()).status, 200)
        TestArm.tok = token()
        TestFaults.tok = token()

    def test_bad_fault(self):
        r = call("POST", "/_emulator/faults", body=[{"match": {"pathRegex": "("}}])
        self.assertEqual(r.status, 400)

    def test_pad_bytes(self):
        faults({"match": {"pathRegex": "^/arm/subscriptions$"}, "padBytes": 1000000})
        r = call("GET", self.SUBS, token=self.tok)
        self.assertEqual(r.status, 200)
        doc = r.json()
        self.assertEqual(len(doc["kvauditPadding"]), 1000000)
        self.assertTrue(doc["value"])

    def test_issued_tokens(self):
        tok = token()
        self.assertEqual(call("GET", "/_emulator/issued-tokens").json()[-1], tok)


class TestLogAndTools(unittest.TestCase):
    def test_log(self):
        since = max([e["seq"] for e in call("GET", "/_emulator/log").json()] or [0])
        tok = token()
        call("GET", "/arm/subscriptions?api-version=2022-12-01", token=tok)
        call("GET", "/arm/subscriptions?api-version=2022-12-01")
        log = call("GET", "/_emulator/log?since=%d" % since).json()
        self.assertEqual(len(log), 3)
        login, ok, anon = log
        self.assertEqual((login["method"], login["status"], login["authorization"]), ("POST", 200, False))
        self.assertEqual(login["issued"]["tid"], T_NW)
        self.assertEqual(login["clientId"], SCANNER)
        self.assertEqual((ok["path"], ok["query"], ok["status"], ok["authorization"]),
                         ("/arm/subscriptions", "api-version=2022-12-01", 200, True))
        self.assertEqual(ok["token"]["aud"], "https://management.core.windows.net/")
        self.assertEqual(ok["token"]["tid"], T_NW)
        self.assertEqual(ok["token"]["oid"], "e0a4c7d2-3f19-4b86-9d5e-7a2c1b8f6e03")
        self.assertEqual((anon["status"], anon["authorization"], anon["token"]), (401, False, None))
        for k in ("time", "method", "host", "path", "query", "status"):
            self.assertIn(k, ok)

    def test_log_never_holds_a_secret(self):
        text = call("GET", "/_emulator/log").body.decode()
        self.assertGreater(len(text), 100)
        for s in SEEN_SECRETS:
            if s:
                self.assertNotIn(s, text)
                self.assertNotIn(s.split(".")[-1] if s.count(".") == 2 else s, text)

    def test_fake_az(self):
        env = dict(os.environ, KVAUDIT_FAKE_AZ_USER=AVA, KVAUDIT_FAKE_AZ_PASSWORD=AVA_PW,
                   KVAUDIT_FAKE_AZ_WORKDIR=E["dir"])
        az = os.path.join(E["dir"], "bin", "az")
        p = subprocess.run([az, "account", "get-access-token", "--scope", ARM_SCOPE, "-o", "json"], env=env,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        doc = json.loads(p.stdout)
        SEEN_SECRETS.add(doc["accessToken"])
        self.assertEqual(set(doc), {"accessToken", "expiresOn", "expires_on", "subscription", "tenant", "tokenType"})
        self.assertEqual((doc["tenant"], doc["tokenType"]), (T_NW, "Bearer"))
        self.assertIn(doc["subscription"], (S_PROD, S_SHARED))
        self.assertIsInstance(doc["expires_on"], int)
        self.assertEqual(arm("/subscriptions", doc["accessToken"], "2022-12-01").status, 200)
        p = subprocess.run([FAKE_AZ, "account", "get-access-token", "--scope", KV_SCOPE, "--tenant", T_LOG,
                            "-o", "json"], env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        doc = json.loads(p.stdout)
        SEEN_SECRETS.add(doc["accessToken"])
        self.assertEqual(doc["tenant"], T_LOG)
        self.assertNotIn("subscription", doc)
        self.assertEqual(claims(doc["accessToken"])["acct"], 1)
        env["KVAUDIT_FAKE_AZ_PASSWORD"] = "wrong"
        p = subprocess.run([FAKE_AZ, "account", "get-access-token", "--scope", ARM_SCOPE], env=env,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertTrue(p.stderr.startswith("ERROR: AADSTS50126"), p.stderr)
        env.pop("KVAUDIT_FAKE_AZ_USER")
        p = subprocess.run([FAKE_AZ, "account", "get-access-token"], env=env, capture_output=True, text=True,
                           timeout=30)
        self.assertEqual((p.returncode, p.stderr.strip()), (1, "ERROR: Please run 'az login' to setup account."))

    def test_files(self):
        d = E["dir"]
        cloud = json.load(open(os.path.join(d, "cloud.json")))
        self.assertEqual(cloud["endpoints"]["resourceManager"], E["base"] + "/arm/")
        self.assertEqual(cloud["endpoints"]["activeDirectory"], E["base"] + "/login")
        self.assertEqual(cloud["endpoints"]["microsoftGraphResourceId"], E["base"] + "/graph/")
        self.assertEqual(cloud["endpoints"]["activeDirectoryResourceId"], "https://management.core.windows.net/")
        self.assertEqual(cloud["suffixes"]["keyvaultDns"], ".vault.emulator.test")
        self.assertEqual(cloud["caBundle"], os.path.join(d, "ca.pem"))
        resolve = open(os.path.join(d, "resolve.txt")).read().strip().split(",")
        self.assertEqual(len(resolve), len(DEMO["vaults"]))
        self.assertIn("kv-nw-prod-weu.vault.emulator.test:%d:127.0.0.1" % E["port"], resolve)
        env = open(os.path.join(d, "env.sh")).read()
        self.assertIn("export AZURE_CLIENT_ID='%s'" % SCANNER, env)
        self.assertIn("export KVAUDIT_CONNECT_TO=", env)
        self.assertIn("kv-nw-prod-weu.vault.emulator.test:443:127.0.0.1:%d" % E["port"],
                      open(os.path.join(d, "connect-to.txt")).read().split(","))


class TestLifetime(unittest.TestCase):
    def test_overlay_and_max_seconds(self):
        d = tempfile.mkdtemp(prefix="kvaudit-emu2-")
        ov = os.path.join(d, "overlay.json")
        with open(ov, "w") as f:
            json.dump({"emulator": {"pageSize": 3, "emptyPage": "end"},
                       "extend": {"subscriptions": [{"id": "/subscriptions/00000000-0000-0000-0000-0000000000aa",
                                                     "subscriptionId": "00000000-0000-0000-0000-0000000000aa",
                                                     "tenantId": T_NW, "displayName": "Extra", "state": "Enabled"}]}},
                      f)
        t0 = time.time()
        p = subprocess.Popen([sys.executable, EMULATOR, "--scenario", SCENARIO, "--overlay", ov, "--workdir", d,
                              "--max-seconds", "3"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port, ctx = wait_ready(d, p, 200)
            with urllib.request.urlopen("https://localhost:%d/_emulator/config" % port, context=ctx) as r:
                self.assertEqual(json.load(r)["pageSize"], 3)
            self.assertEqual(p.wait(timeout=15), 0)
            self.assertLess(time.time() - t0, 12)
            self.assertEqual(open(os.path.join(d, "stopped")).read().strip(), "timeout")
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


class TestFastPaths(unittest.TestCase):
    """What the emulator does faster for benchmarks must give what the plain code gives."""

    def world_stub(self, kv_urls):
        sys.path.insert(0, HERE)
        import emulator   # noqa: E402
        w = object.__new__(emulator.World)
        w.kv_urls, w.port = kv_urls, 4443
        return emulator, w

    def test_key_vault_urls_rewritten_in_text_as_by_the_walk(self):
        tricky = ["https://kv1.vault.azure.net", "https://kv1.vault.azure.net\n", "https://kv1.vault.azure.net\"x",
                  "https://kv1.vault.azure.net\\", "https://kv1.vault.azure.net:443/keys/k", "https://kv1.vault.azure.netx",
                  "https://kv1.vault.azure.net\nx", "https://kv1.vault.azure.net?x", "xhttps://a-b.vault.azure.net/",
                  "https://kv1.vault.azure.net/\u00e9", "https://KV1.VAULT.AZURE.NET/"]
        docs = [DEMO, {"vaults": [{"t%d" % i: v, "l": [v, {"x": v}]} for i, v in enumerate(tricky)]},
                {"keys": [{"https://kv1.vault.azure.net/": "https://kv1.vault.azure.net/keys/a"}]}]   # a key: the walk
        for kv_urls in ("port", "noport", "azure"):
            emulator, w = self.world_stub(kv_urls)
            for doc in docs:
                walked = {k: w.rewrite_kv(copy.deepcopy(doc.get(k) or [])) for k in emulator.ESTATE_LISTS}
                self.assertEqual(w.estate_lists(doc), walked, kv_urls)

    def test_times_parsed_as_strptime_does(self):
        emulator, _ = self.world_stub("port")
        for v in ("2026-11-28T01:02:48.780514Z", "2026-11-28T01:02:48+01:30", "2026-11-28T01:02:48.1234567-05:00",
                  "2026-11-28T01:02:48"):
            want = datetime.datetime.strptime(v[:19], "%Y-%m-%dT%H:%M:%S")
            self.assertEqual(emulator.civil(v[:19]), want)
        for bad in ("2026-02-30T01:02:48Z", "2026-11-28T01:02:60Z"):
            self.assertRaises(ValueError, emulator.parse_time, bad)

    def test_profile_written_at_shutdown(self):
        d = tempfile.mkdtemp(prefix="kvaudit-emu3-")
        out = os.path.join(d, "emulator.prof")
        p = subprocess.Popen([sys.executable, EMULATOR, "--scenario", SCENARIO, "--workdir", d, "--max-seconds", "60",
                              "--profile", out], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port, ctx = wait_ready(d, p, 400)
            with urllib.request.urlopen("https://localhost:%d/_emulator/config" % port, context=ctx) as r:
                json.load(r)
            req = urllib.request.Request("https://localhost:%d/_emulator/shutdown" % port, method="POST")
            urllib.request.urlopen(req, context=ctx).read()
            self.assertEqual(p.wait(timeout=30), 0)
            import pstats
            names = {fn for (_, _, fn) in pstats.Stats(out).stats}
            self.assertIn("load", names)        # loading, in the main thread
            self.assertIn("control", names)     # a request, in its connection's thread
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


# ------------------------------------------------------------------------------------------ runner
def main():
    runner = unittest.TextTestRunner(verbosity=2)
    prog = unittest.main(module=__name__, testRunner=runner, exit=False, argv=sys.argv)
    res = prog.result
    failed = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
    passed = res.testsRun - failed - len(res.skipped)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or res.testsRun == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
