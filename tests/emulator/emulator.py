#!/usr/bin/env python3
"""
The Azure emulator kvaudit's end-to-end tests run against (DESIGN.md, "The Azure emulator").

    python3 tests/emulator/emulator.py --scenario FILE [--overlay FILE ...] --workdir DIR
                                       [--port 0] [--max-seconds 900] [--kv-urls port|noport|azure]

One HTTPS server on 127.0.0.1 speaks, with Azure's URLs, api-versions, JSON shapes, paging, error
bodies and throttling headers, the parts of Entra ID (/login), ARM (/arm), Microsoft Graph (/graph),
IMDS (/metadata), App Service identity (/msi) and Key Vault (by Host header: <vault>.vault.emulator.test)
that docs/azure-api.md lists.  A second, plain-HTTP listener serves only IMDS and App Service identity,
as the real ones are plain HTTP.  State (access policies, role assignments) is kept, every request is
logged without its token, and faults are injected on demand through /_emulator/ (no auth).

At start it writes into DIR: ca.pem (trust it), server.pem/server.key, cloud.json (`az cloud show`
shape plus kvaudit's caBundle), resolve.txt (KVAUDIT_RESOLVE value), connect-to.txt, env.sh,
emulator.json (everything a test needs: URLs, tenants, credentials), apps/ (generated client
certificates and federated token files), bin/az (the fake az CLI) and, last, ready (the port).
See tests/emulator/README.md.  Python 3 standard library plus python3-cryptography.
"""
import argparse
import base64
import copy
import datetime
import gc
import hashlib
import hmac
import http.server
import ipaddress
import json
import math
import os
import re
import secrets
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kql  # noqa: E402  (the KQL subset of Resource Graph, tests/emulator/kql.py)

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

BMS_APP_ID = "262044b1-e2ce-469f-a196-69ab7ada62d3"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
AZ_CLI_APP_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
MS_TENANT = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"
KV_SUFFIX = "vault.emulator.test"
KV_AUDIENCE = "https://" + KV_SUFFIX
FED_AUDIENCE = "api://AzureADTokenExchange"
EMU_NS = uuid.UUID("1f0c8a2e-6b4d-4e7a-9c3f-5d2b8e1a7c64")

# ARM api-versions, one per route, exactly those docs/azure-api.md names.
V_SUBS = "2022-12-01"
V_VM = "2024-07-01"
V_DISK = "2024-03-02"
V_KV = "2024-11-01"
V_AUTHZ = "2022-04-01"
V_RSV = "2025-02-01"
V_BACKUP = "2024-10-01"
V_INSIGHTS = "2015-04-01"   # the Activity Log (Microsoft.Insights/eventtypes/management/values)
V_GRAPH_QUERY = "2024-04-01"   # Resource Graph (POST /providers/Microsoft.ResourceGraph/resources)
V_KVDATA = ("7.4",)

ESTATE_LISTS = ("subscriptions", "virtualMachines", "vmExtensions", "disks", "vaults", "roleAssignments",
                "roleDefinitions", "recoveryServicesVaults", "backupProtectedItems", "keys",
                "secrets", "deletedSecrets", "deletedKeys",
                "backupJobs", "backupPolicies", "activityLog")

# Built-in Key Vault roles, served at subscription scope when the scenario lacks them.
BUILTIN_ROLES = {
    "00482a5a-887f-4fb3-b363-3b7fe8e74483": ("Key Vault Administrator", ["Microsoft.KeyVault/vaults/*"]),
    "21090545-7ca7-4776-b22c-e363652d74d2": ("Key Vault Reader", [
        "Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/secrets/readMetadata/action"]),
    "12338af0-0e69-4776-bea7-57ae8d297424": ("Key Vault Crypto User", [
        "Microsoft.KeyVault/vaults/keys/read", "Microsoft.KeyVault/vaults/keys/update/action",
        "Microsoft.KeyVault/vaults/keys/backup/action", "Microsoft.KeyVault/vaults/keys/encrypt/action",
        "Microsoft.KeyVault/vaults/keys/decrypt/action", "Microsoft.KeyVault/vaults/keys/wrap/action",
        "Microsoft.KeyVault/vaults/keys/unwrap/action", "Microsoft.KeyVault/vaults/keys/sign/action",
        "Microsoft.KeyVault/vaults/keys/verify/action"]),
    "14b46e9e-c2b7-41b4-b07b-48a6ebf60603": ("Key Vault Crypto Officer", [
        "Microsoft.KeyVault/vaults/keys/*", "Microsoft.KeyVault/vaults/keyrotationpolicies/*"]),
    "e147488a-f6f5-4113-8e2d-b22465e65bf6": ("Key Vault Crypto Service Encryption User", [
        "Microsoft.KeyVault/vaults/keys/read", "Microsoft.KeyVault/vaults/keys/wrap/action",
        "Microsoft.KeyVault/vaults/keys/unwrap/action"]),
    "4633458b-17de-408a-b874-0445c86b69e6": ("Key Vault Secrets User", [
        "Microsoft.KeyVault/vaults/secrets/getSecret/action",
        "Microsoft.KeyVault/vaults/secrets/readMetadata/action"]),
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": ("Key Vault Secrets Officer", ["Microsoft.KeyVault/vaults/secrets/*"]),
}


# ------------------------------------------------------------------------------------------ helpers
def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def b64url_dec(s):
    s = s.strip()
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def iso_now():
    return utcnow().strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def iso_at(t):
    """iso_now's format for a time.time() value."""
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


TIME_RX = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")


def civil(s19):
    """"2026-11-28T01:02:48" (already matched) as a naive datetime; what strptime would give, faster."""
    try:
        return datetime.datetime(int(s19[0:4]), int(s19[5:7]), int(s19[8:10]), int(s19[11:13]), int(s19[14:16]),
                                 int(s19[17:19]))
    except ValueError:   # e.g. second 60, which strptime takes
        return datetime.datetime.strptime(s19, "%Y-%m-%dT%H:%M:%S")


def parse_time(s):
    """ISO 8601 ("2026-11-28T01:02:48.780514Z", "…+00:00") to Unix seconds, or None."""
    m = TIME_RX.match(s or "")
    if not m:
        return None
    t = civil(m.group(1)).replace(tzinfo=datetime.timezone.utc)
    off = m.group(3) or "Z"
    if off != "Z":
        sign = 1 if off[0] == "+" else -1
        t -= sign * datetime.timedelta(hours=int(off[1:3]), minutes=int(off[4:6]))
    return t.timestamp() + float(m.group(2) or 0)


def shift_times(obj, keys, seconds):
    """Moves the ISO times obj[k] by seconds, keeping their fraction and zone as written."""
    for k in keys:
        v = (obj or {}).get(k)
        m = re.match(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(.*)$", v or "")
        if seconds and m and parse_time(v) is not None:
            t = civil(m.group(1)) + datetime.timedelta(seconds=seconds)
            obj[k] = t.strftime("%Y-%m-%dT%H:%M:%S") + m.group(2)


# The Recovery Services vault an ID is in (lower case), as the first 9 segments of the ID.
RSV_PREFIX = re.compile(r"^(/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.recoveryservices/vaults/[^/]+)"
                        r"(?:/|$)")


def lc(s):
    return s.lower() if isinstance(s, str) else s


def stable_guid(*parts):
    return str(uuid.uuid5(EMU_NS, "/".join(str(p) for p in parts)))


def sub_of(resource_id):
    m = re.match(r"^/subscriptions/([^/]+)", resource_id or "", re.I)
    return m.group(1).lower() if m else None


def encloses(scope, rid):
    """True when ARM scope `scope` is rid or one of its ancestors (case-insensitive, by segment)."""
    s = lc(scope or "").rstrip("/")
    r = lc(rid or "").rstrip("/")
    return s == "" or r == s or r.startswith(s + "/")


def jwt_encode(header, payload, key):
    h = b64url(json.dumps(header, separators=(",", ":")).encode())
    p = b64url(json.dumps(payload, separators=(",", ":")).encode())
    sig = hmac.new(key, (h + "." + p).encode(), hashlib.sha256).digest()
    return h + "." + p + "." + b64url(sig)


def jwt_split(token):
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT (expected 3 segments)")
    header = json.loads(b64url_dec(parts[0]))
    payload = json.loads(b64url_dec(parts[1]))
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise ValueError("JWT header or payload is not an object")
    return header, payload, parts


VAULT_PATCH_BOOLS = ("enabledForDeployment", "enabledForDiskEncryption", "enabledForTemplateDeployment",
                     "enableSoftDelete", "enableRbacAuthorization", "enablePurgeProtection")


def action_matches(actions, not_actions, action):
    """ARM action patterns: '*' matches any run of characters, case-insensitively; notActions subtract."""
    def hit(pats):
        return any(re.fullmatch(".*".join(re.escape(x) for x in lc(p).split("*")), lc(action))
                   for p in pats or [] if isinstance(p, str))
    return hit(actions) and not hit(not_actions)


def deep_merge(base, over):
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = deep_merge(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def load_scenario(path, overlays=()):
    """A scenario file, its "base" chain (relative paths), then each overlay on top.
    Top-level keys of the upper file replace the lower's, "emulator" is deep-merged and
    "extend": {"list": [...]} appends to a list."""
    def one(p, seen):
        p = os.path.abspath(p)
        if p in seen:
            raise ValueError("scenario base cycle at " + p)
        with open(p, encoding="utf-8") as f:
            doc = json.load(f)
        if not isinstance(doc, dict):
            raise ValueError(p + ": a scenario is a JSON object")
        if "base" in doc:
            base = one(os.path.join(os.path.dirname(p), doc["base"]), seen | {p})
            return apply(base, doc)
        return apply({}, doc)

    def apply(lower, upper):
        out = dict(lower)
        for k, v in upper.items():
            if k in ("base", "extend"):
                continue
            if k == "emulator":
                out[k] = deep_merge(lower.get(k, {}), v)
            else:
                out[k] = v   # every document is parsed here and used once: nothing shares it
        for k, v in (upper.get("extend") or {}).items():
            out[k] = list(out.get(k) or []) + v
        return out

    doc = one(path, frozenset())
    for o in overlays:
        doc = apply(doc, one(o, frozenset()))
    return doc


# ------------------------------------------------------------------------------------------ certificates
def make_pki(workdir, vault_names):
    key = ec.generate_private_key(ec.SECP256R1())
    now = utcnow()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kvaudit Azure emulator CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
          .sign(key, hashes.SHA256()))
    skey = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.DNSName("*." + KV_SUFFIX), x509.DNSName(KV_SUFFIX)]
    names += [x509.DNSName(n.lower() + "." + KV_SUFFIX) for n in sorted(set(vault_names))]
    names += [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    srv = (x509.CertificateBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
           .issuer_name(ca_name).public_key(skey.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
           .add_extension(x509.SubjectAlternativeName(names), critical=False)
           .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
           .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
           .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
           .sign(key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    write_file(os.path.join(workdir, "ca.pem"), ca.public_bytes(pem))
    write_file(os.path.join(workdir, "server.pem"), srv.public_bytes(pem) + ca.public_bytes(pem))
    write_file(os.path.join(workdir, "server.key"), skey.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), mode=0o600)


def make_client_cert(cn):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = utcnow()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
            .sign(key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return (cert.public_bytes(pem).decode(),
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode())


def write_file(path, data, mode=0o644):
    if isinstance(data, str):
        data = data.encode()
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------ the world
class World:
    """The scenario: directory objects, resources and mutable state.  All access under self.lock."""

    def __init__(self, doc, port, kv_urls, workdir):
        self.lock = threading.RLock()
        self.port = port
        self.base = "https://127.0.0.1:%d" % port
        self.workdir = workdir
        self.kv_urls = kv_urls
        self.key = secrets.token_bytes(32)
        emu = doc.get("emulator") or {}
        self.emu = emu
        self.cfg = {
            "pageSize": int(emu.get("pageSize", 2)),
            "emptyPage": emu.get("emptyPage", "none"),        # none | middle | end
            "lastNextLink": emu.get("lastNextLink", "absent"),  # absent | null | empty
            "nextLinkBase": emu.get("nextLinkBase"),          # e.g. "https://evil.example" (tests)
            "tokenLifetime": int(emu.get("tokenLifetime", 3599)),
            "dataPlane": copy.deepcopy(emu.get("dataPlane") or {"mode": "open"}),
            # the VM list's resources[]: "ids" (extension IDs only, as ARM has been seen to answer) or "full"
            "vmListExtensions": emu.get("vmListExtensions", "ids"),
            # ARM's read token bucket per subscription and principal, e.g. {"reads": 250, "refillPerSec": 25}
            "armThrottle": copy.deepcopy(emu.get("armThrottle")),
        }
        self.buckets = {}
        self.token_serial = 0
        self.revoked_upto = 0
        self.issued = []      # every token issued, for the security tests' leak checks (never logged)
        self.log = []
        self.log_seq = 0
        self.faults = []
        self.fault_seq = 0
        self.reads_left = 11999
        # Resource Graph: page size (its maximum, 1000, unless a scenario makes pages smaller) and the user
        # quota; "graphQuota": {"queries": 15, "seconds": 5} enforces it with 429, else none is enforced and
        # the headers count against 1000 queries per 5 s.
        self.graph_page = max(1, min(1000, int(emu.get("graphPageSize", 1000))))
        gq = emu.get("graphQuota")
        self.graph_quota = {"queries": int((gq or {}).get("queries", 1000)),
                            "seconds": float((gq or {}).get("seconds", 5)), "enforce": bool(gq)}
        # make_list()'s cap below Kusto's default maxSize: "graphMakeListMax" lets a test cut lists (kql.py)
        self.graph_list_max = int(emu.get("graphMakeListMax", kql.MAKE_LIST_MAX))
        self.graph_windows = {}   # user object ID -> [window start, queries in it]
        self.graph_results = {}   # (user, query digest, subscriptions) -> rows, for the pages after the first
        self.graph_index = {}     # id(resource) -> (resource, its properties, type, Resource Graph's row): graph_row
        self.memos = {}           # (kind, id(object)) -> (object, value): World.memo
        self.verified = {}        # token -> (signature good, claims): World.verify
        self.load(doc)
        for f in emu.get("faults") or []:
            self.add_fault(f)

    # ---- loading
    def rewrite_kv(self, obj):
        if self.kv_urls == "azure":
            return obj
        host_tail = KV_SUFFIX + (":%d" % self.port if self.kv_urls == "port" else "")
        rx = re.compile(r"(https://[A-Za-z0-9-]+)\.vault\.azure\.net(?::443)?(?=[/\"?]|$)")

        def walk(o):
            if isinstance(o, str):
                return rx.sub(lambda m: m.group(1) + "." + host_tail, o)
            if isinstance(o, list):
                return [walk(x) for x in o]
            if isinstance(o, dict):
                return {k: walk(v) for k, v in o.items()}
            return o
        return walk(obj)

    def estate_lists(self, doc):
        """The scenario's lists, copied, with Key Vault URLs rewritten as rewrite_kv does, through one
        JSON round trip (a walk in Python of a 10k-VM scenario takes a minute).  In the text a string
        value ends at an unescaped quote not followed by ':' (a key), and rewrite_kv's other
        end-of-string cases, a quote or a final newline, are escaped; when a key holds a vault URL
        (rewrite_kv leaves keys alone) the walk does it."""
        lists = {k: doc.get(k) or [] for k in ESTATE_LISTS}
        text = json.dumps(lists)
        if self.kv_urls != "azure":
            if re.search(r'"[^"]*\.vault\.azure\.net[^"]*": ', text):
                return {k: self.rewrite_kv(copy.deepcopy(v)) for k, v in lists.items()}
            host_tail = KV_SUFFIX + (":%d" % self.port if self.kv_urls == "port" else "")
            rx = re.compile(r'(https://[A-Za-z0-9-]+)\.vault\.azure\.net(?::443)?(?=[/?]|"(?!:)|\\"|\\n"(?!:))')
            text = rx.sub(r"\1." + host_tail, text)
        return json.loads(text)

    def load(self, doc):
        emu = self.emu
        data = self.estate_lists(doc)
        self.subscriptions = data["subscriptions"]
        self.vms = data["virtualMachines"]
        self.vm_extensions = data["vmExtensions"]
        self.disks = data["disks"]
        self.vaults = data["vaults"]
        self.role_assignments = data["roleAssignments"]
        self.role_definitions = data["roleDefinitions"]
        self.rsvs = data["recoveryServicesVaults"]
        self.protected_items = data["backupProtectedItems"]
        self.keys = data["keys"]
        # Key Vault data plane: value-free secret metadata and soft-deleted secrets and keys.
        self.secrets = data["secrets"]
        self.deleted_secrets = data["deletedSecrets"]
        self.deleted_keys = data["deletedKeys"]
        # Azure Backup's evidence: jobs, policies and the Activity Log's protection writes.  Their times (and
        # the protected items' lastBackupTime) move with the clock, so a live scan today sees the same ages
        # as the snapshot saw at its collectedAt ("shiftTimes": false keeps them as written).
        self.backup_jobs = data["backupJobs"]
        self.backup_policies = data["backupPolicies"]
        self.activity_log = data["activityLog"]
        shift = 0
        if emu.get("shiftTimes", True) and parse_time(doc.get("collectedAt")):
            shift = int(time.time()) - int(parse_time(doc["collectedAt"]))
        self.time_shift = shift
        for j in self.backup_jobs:
            shift_times(j.get("properties"), ("startTime", "endTime"), shift)
        for e in self.activity_log:
            shift_times(e, ("eventTimestamp", "submissionTimestamp"), shift)
        for it in self.protected_items:
            shift_times(it.get("properties"), ("lastBackupTime",), shift)
        # tenants: the emulator section, names from the estate's tenants[]
        estate_tenants = {lc(t.get("tenantId")): t for t in doc.get("tenants") or []}
        self.tenants = {}
        for t in emu.get("tenants") or []:
            tid = lc(t["tenantId"])
            et = estate_tenants.get(tid, {})
            self.tenants[tid] = {
                "tenantId": tid,
                "displayName": t.get("displayName") or et.get("displayName") or tid,
                "defaultDomain": t.get("defaultDomain") or et.get("defaultDomain") or (tid + ".onmicrosoft.com"),
                "countryCode": t.get("countryCode", "SE"),
                "users": [dict(u) for u in t.get("users") or []],
                "servicePrincipals": [dict(s) for s in t.get("servicePrincipals") or []],
            }
        for s in self.subscriptions:
            tid = lc(s.get("tenantId"))
            if tid and tid not in self.tenants:
                self.tenants[tid] = {"tenantId": tid, "displayName": tid, "defaultDomain": tid + ".onmicrosoft.com",
                                     "countryCode": "SE", "users": [], "servicePrincipals": []}
        # people: users keyed by sign-in name across tenants
        self.passwords = {}
        for t in self.tenants.values():
            for u in t["users"]:
                u["signInName"] = lc(u.get("signInName") or u.get("userPrincipalName"))
                u.setdefault("homeTenantId", t["tenantId"])
                u["homeTenantId"] = lc(u["homeTenantId"])
                u.setdefault("userType", "Member")
                u.setdefault("displayName", u.get("userPrincipalName"))
                if u.get("password") is not None:
                    self.passwords.setdefault(u["signInName"], u["password"])
        # apps
        self.apps = {}
        for a in emu.get("apps") or []:
            app = dict(a)
            app["clientId"] = lc(app["clientId"])
            app["tenantId"] = lc(app["tenantId"])
            certs = app.get("certificatePem") or []
            if isinstance(certs, str):
                certs = [certs]
            app["certs"] = []
            if app.get("certificate") == "generate":
                cert_pem, key_pem = make_client_cert("kvaudit-emulator-" + app["clientId"])
                os.makedirs(os.path.join(self.workdir, "apps"), exist_ok=True)
                app["certificatePath"] = os.path.join(self.workdir, "apps", app["clientId"] + ".pem")
                write_file(app["certificatePath"], cert_pem + key_pem, mode=0o600)
                certs = certs + [cert_pem]
            for pem in certs:
                c = x509.load_pem_x509_certificate(pem.encode())
                app["certs"].append(c)
            fed = app.get("federated")
            if fed:
                fed = [fed] if isinstance(fed, dict) else list(fed)
                app["federated"] = fed
                os.makedirs(os.path.join(self.workdir, "apps"), exist_ok=True)
                app["federatedTokenPath"] = os.path.join(self.workdir, "apps", app["clientId"] + ".federated.jwt")
                now = int(time.time())
                claims = {"iss": fed[0]["issuer"], "sub": fed[0]["subject"],
                          "aud": fed[0].get("audience", FED_AUDIENCE), "iat": now, "nbf": now, "exp": now + 86400,
                          "jti": str(uuid.uuid4())}
                write_file(app["federatedTokenPath"],
                           jwt_encode({"alg": "HS256", "typ": "JWT"}, claims, b"federated-test-issuer"), mode=0o600)
            # the app's service principal in its home tenant
            home = self.tenants.get(app["tenantId"])
            if home is not None and not any(lc(s.get("appId")) == app["clientId"] for s in home["servicePrincipals"]):
                home["servicePrincipals"].append({"objectId": stable_guid("sp", app["tenantId"], app["clientId"]),
                                                  "appId": app["clientId"],
                                                  "displayName": app.get("displayName", app["clientId"])})
            self.apps[app["clientId"]] = app
        mis = emu.get("managedIdentity") or []
        if isinstance(mis, dict):
            mis = [mis]
        self.mis = []
        for m in mis:
            m = dict(m)
            m["clientId"] = lc(m["clientId"])
            m["objectId"] = lc(m["objectId"])
            m["tenantId"] = lc(m["tenantId"])
            m.setdefault("identityHeader", "emulator-identity-header")
            self.mis.append(m)
        self.access = {lc(a["objectId"]): a for a in emu.get("access") or []}
        # every principal that some resource names, for role-assignment validation
        self.known_principals = set()
        for t in self.tenants.values():
            self.known_principals |= {lc(u["objectId"]) for u in t["users"]}
            self.known_principals |= {lc(s["objectId"]) for s in t["servicePrincipals"]}
        self.known_principals |= {m["objectId"] for m in self.mis}
        for ra in self.role_assignments:
            self.known_principals.add(lc(ra.get("properties", {}).get("principalId")))
        for v in self.vaults:
            for ap in v.get("properties", {}).get("accessPolicies") or []:
                self.known_principals.add(lc(ap.get("objectId")))

    # ---- directory look-ups
    def tenant_by_name(self, name):
        n = lc(name or "")
        if n in self.tenants:
            return self.tenants[n]
        for t in self.tenants.values():
            if lc(t["defaultDomain"]) == n:
                return t
        return None

    def users_named(self, name):
        n = lc(name)
        return [(t, u) for t in self.tenants.values() for u in t["users"]
                if u["signInName"] == n or lc(u.get("userPrincipalName")) == n]

    def sp_in(self, tenant, app_id):
        for s in tenant["servicePrincipals"]:
            if lc(s.get("appId")) == lc(app_id):
                return s
        return None

    def principal(self, tid, oid):
        """(kind, key, entry) of object oid in tenant tid, or None."""
        t = self.tenants.get(lc(tid))
        if t is None:
            return None
        for u in t["users"]:
            if lc(u["objectId"]) == lc(oid):
                return ("user", u["signInName"], u)
        for m in self.mis:
            if m["objectId"] == lc(oid) and m["tenantId"] == lc(tid):
                return ("mi", m["clientId"], m)
        for s in t["servicePrincipals"]:
            if lc(s["objectId"]) == lc(oid):
                return ("app", lc(s.get("appId")), s)
        return None

    def tenants_of(self, claims):
        kind = claims.get("idtyp")
        if kind == "user":
            p = self.principal(claims["tid"], claims["oid"])
            key = p[1] if p else None
            return [t for t in self.tenants.values() if any(u["signInName"] == key for u in t["users"])]
        appid = claims.get("appid")
        if any(m["clientId"] == lc(appid) for m in self.mis):
            return [self.tenants[claims["tid"]]]
        return [t for t in self.tenants.values() if self.sp_in(t, appid)]

    # ---- tokens
    def issue(self, claims_extra, aud, tid, lifetime=None):
        with self.lock:
            self.token_serial += 1
            serial = self.token_serial
        now = int(time.time())
        life = int(lifetime if lifetime is not None else self.cfg["tokenLifetime"])
        claims = {"aud": aud, "iss": "https://sts.windows.net/%s/" % tid, "iat": now, "nbf": now,
                  "exp": now + life, "tid": tid, "ver": "1.0", "uti": b64url(secrets.token_bytes(16)),
                  "xms_emu_seq": serial}
        claims.update(claims_extra)
        token = jwt_encode({"typ": "JWT", "alg": "HS256", "kid": "emulator"}, claims, self.key)
        with self.lock:
            self.issued.append(token)
        return token, claims, life

    def verify(self, token):
        """(claims, None) or (claims-or-None, (kind, message)) with kind malformed|signature|expired.  A
        token's decoding and signature check are kept by its exact text (a scan sends one token 1,000s of
        times); its expiry, revocation and tenant are checked every time.  Nothing changes the claims."""
        hit = self.verified.get(token)
        if hit is None:
            try:
                header, claims, parts = jwt_split(token)
            except Exception:
                return None, ("malformed", "The access token is invalid.")
            sig = hmac.new(self.key, (parts[0] + "." + parts[1]).encode(), hashlib.sha256).digest()
            try:
                good = hmac.compare_digest(sig, b64url_dec(parts[2]))
            except Exception:
                good = False
            hit = (header.get("alg") == "HS256" and good, claims)
            if len(self.verified) >= 4096:   # a client sending many tokens (the security tests) stays bounded
                self.verified.clear()
            self.verified[token] = hit
        good, claims = hit
        if not good:
            return None, ("signature", "The access token signature is invalid.")
        exp = claims.get("exp", 0)
        if exp <= time.time() or claims.get("xms_emu_seq", 0) <= self.revoked_upto:
            return claims, ("expired", "The access token expiry UTC time '%s' is earlier than current UTC time '%s'." % (
                datetime.datetime.fromtimestamp(min(exp, time.time()), datetime.timezone.utc).strftime("%m/%d/%Y %I:%M:%S %p"),
                utcnow().strftime("%m/%d/%Y %I:%M:%S %p")))
        if lc(claims.get("tid")) not in self.tenants:
            return claims, ("malformed", "The access token is from an unknown tenant.")
        return claims, None

    def audience_kind(self, aud):
        a = lc(aud or "").rstrip("/")
        hosts = ("https://127.0.0.1:%d" % self.port, "https://localhost:%d" % self.port)
        if a in ("https://management.core.windows.net", "https://management.azure.com") or \
                a in tuple(h + "/arm" for h in hosts):
            return "arm"
        if a in ("https://graph.microsoft.com", GRAPH_APP_ID) or a in tuple(h + "/graph" for h in hosts):
            return "graph"
        if a in ("https://vault.azure.net", KV_AUDIENCE, "cfa8b339-82a2-471a-a3c9-0fc0be7a4093"):
            return "keyvault"
        return None

    # ---- faults
    def add_fault(self, f):
        if not isinstance(f, dict):
            raise ValueError("a fault is a JSON object")
        f = dict(f)
        if isinstance(f.get("action"), dict):
            act = f.pop("action")
            f.update(act)
        m = f.get("match") or {}
        for k in ("pathRegex", "host", "queryRegex"):
            if m.get(k):
                re.compile(m[k])
        times = f.get("times", 1)
        f["remaining"] = None if times in (0, None, "always") else int(times)
        with self.lock:
            self.fault_seq += 1
            f["id"] = self.fault_seq
            f["hits"] = 0
            self.faults.append(f)
        return f["id"]

    def take_fault(self, method, host, path, query):
        with self.lock:
            for f in self.faults:
                if f["remaining"] is not None and f["remaining"] <= 0:
                    continue
                m = f.get("match") or {}
                if m.get("method") and lc(m["method"]) != lc(method):
                    continue
                if m.get("pathRegex") and not re.search(m["pathRegex"], path, re.I):
                    continue
                if m.get("queryRegex") and not re.search(m["queryRegex"], query, re.I):
                    continue
                if m.get("host") and not re.search(m["host"], host or "", re.I):
                    continue
                if f["remaining"] is not None:
                    f["remaining"] -= 1
                f["hits"] += 1
                return copy.deepcopy(f)
        return None

    def sub_tenants(self):
        """Subscription ID -> tenant ID (both lower case), for Resource Graph's rows."""
        idx = getattr(self, "sub_tenant_index", None)
        if idx is None or idx[0] is not self.subscriptions or idx[1] != len(self.subscriptions):
            idx = (self.subscriptions, len(self.subscriptions),
                   {lc(s.get("subscriptionId")): lc(s.get("tenantId")) for s in self.subscriptions})
            self.sub_tenant_index = idx
        return idx[2]

    def index_graph_rows(self):
        """Builds Resource Graph's rows of the VMs, their extensions and the disks (graph_row) before the
        server starts, as the service answers from its index; key vaults and Recovery Services vaults
        (few, and changed by writes) are built per query."""
        ext = "microsoft.compute/virtualmachines/extensions"
        for vm in self.vms:
            graph_row(self, vm, "microsoft.compute/virtualmachines")
            for e in vm.get("resources") or []:
                graph_row(self, e, ext)
        for e in self.vm_extensions:
            graph_row(self, e, ext)
        for d in self.disks:
            graph_row(self, d, "microsoft.compute/disks")

    def index_answers(self):
        """Before the server starts: the JSON of every resource that lists serve and nothing changes
        (World.encoded), what the jobs' and policies' $filter compares, and the indexes.  Azure answers
        from what it keeps; a 10k-VM graph scan's 619 pages of jobs took ~1.5 ms of CPU each (encoding,
        the first page's filter, the vault index built by the first request), and the GIL made every
        other answer wait."""
        for items in (self.backup_jobs, self.backup_policies, self.protected_items, self.activity_log, self.disks):
            for x in items:
                self.encoded(x)
        for items in (self.backup_jobs, self.backup_policies):
            for x in items:
                self.backup_facts(x)
        for vm in self.vms:
            self.vm_list_json(vm, True)
            self.vm_list_json(vm, False)
        # and the indexes that the first request of each kind would build
        for name, items in (("vms", self.vms), ("vmExtensions", self.vm_extensions), ("disks", self.disks),
                            ("vaults", self.vaults), ("rsvs", self.rsvs)):
            self.subs_of(name, items)   # Resource Graph's (graph_rows)
        self.in_sub("vms", self.vms, "")
        self.in_sub("disks", self.disks, "")
        self.under_rsv("protectedItems", self.protected_items, "", by_vault_id=True)
        self.under_rsv("backupjobs", self.backup_jobs, "")
        self.under_rsv("backuppolicies", self.backup_policies, "")
        self.events_of("")
        self.subscription("")
        self.has_rsv("")

    def subscription(self, sub_id):
        """The scenario's subscription with that ID (case-insensitive) or None, through an index."""
        idx = getattr(self, "sub_index_by_id", None)
        if idx is None or idx[0] is not self.subscriptions or idx[1] != len(self.subscriptions):
            idx = (self.subscriptions, len(self.subscriptions), {})
            for s in self.subscriptions:
                idx[2].setdefault(lc(s.get("subscriptionId")), s)
            self.sub_index_by_id = idx
        return idx[2].get(lc(sub_id))

    def has_rsv(self, rsv_id):
        """Whether a Recovery Services vault has that ID (case-insensitive), through an index."""
        idx = getattr(self, "rsv_ids", None)
        if idx is None or idx[0] is not self.rsvs or idx[1] != len(self.rsvs):
            idx = (self.rsvs, len(self.rsvs), {lc(v.get("id")) for v in self.rsvs})
            self.rsv_ids = idx
        return lc(rsv_id) in idx[2]

    def memo(self, kind, obj, make):
        """make()'s value for obj, made once, for objects that nothing changes.  The entry holds obj, so its
        id() is never another object's; no lock (two threads at worst both make it)."""
        hit = self.memos.get((kind, id(obj)))
        if hit is not None and hit[0] is obj:
            return hit[1]
        v = make()
        self.memos[(kind, id(obj))] = (obj, v)
        return v

    def encoded(self, obj, kind="json", make=None):
        """The JSON (bytes, compact) of obj, or of the view of it that make() builds, made once: only for
        resources that nothing changes (VMs, extensions, disks, protected items, jobs, policies, events)."""
        return self.memo(kind, obj, lambda: JSON(obj if make is None else make()).encode())

    def backup_facts(self, item):
        """What backupJobs' and backupPolicies' $filter compare of a job or policy, made once: its
        backupManagementType, operation and status (lower case) and startTime (Unix seconds or None)."""
        def make():
            p = item.get("properties") or {}
            return (lc(p.get("backupManagementType")), lc(p.get("operation")), lc(p.get("status")),
                    parse_time(p.get("startTime")))
        return self.memo("backupFacts", item, make)

    def vm_list_json(self, vm, status_only):
        """vm_list_item(vm, status_only), encoded (its shape follows the vmListExtensions setting)."""
        mode = self.cfg.get("vmListExtensions")
        return self.encoded(vm, ("vmList", status_only, mode), lambda: self.vm_list_item(vm, status_only))

    # ---- indexes (built on first use, or by index_answers before the server starts)
    def in_sub(self, name, items, sid):
        """The items of one subscription (not copied), through an index by subscription: benchmarks list
        estates of 10,000s of resources page by page."""
        with self.lock:
            cache = self.__dict__.setdefault("sub_index", {})
            idx = cache.get(name)
            if idx is None or idx[0] is not items or idx[1] != len(items):
                by = {}
                for x in items:
                    by.setdefault(sub_of(x.get("id")), []).append(x)
                idx = (items, len(items), by)
                cache[name] = idx
        return idx[2].get(lc(sid), [])

    def subs_of(self, name, items):
        """sub_of(id) of each item, in order, computed once per list (IDs never change)."""
        with self.lock:
            cache = self.__dict__.setdefault("subs_index", {})
            idx = cache.get(name)
            if idx is None or idx[0] is not items or idx[1] != len(items):
                idx = (items, len(items), [sub_of(x.get("id")) for x in items])
                cache[name] = idx
        return idx[2]

    def events_of(self, sid):
        """The Activity Log's events of one subscription with their parsed eventTimestamp, [(time, event)]."""
        with self.lock:
            idx = getattr(self, "event_index", None)
            if idx is None or idx[0] is not self.activity_log or idx[1] != len(self.activity_log):
                by = {}
                for e in self.activity_log:
                    by.setdefault(lc(e.get("subscriptionId")), []).append((parse_time(e.get("eventTimestamp")), e))
                idx = (self.activity_log, len(self.activity_log), by)
                self.event_index = idx
        return idx[2].get(lc(sid), [])

    def under_rsv(self, name, items, rsv_id, by_vault_id=False):
        """The items below Recovery Services vault rsv_id (encloses), with by_vault_id also those whose
        properties.vaultId is it, in the list's order and not copied, through an index by vault: a
        10k-VM scenario has 50,000 jobs and each of its 600 pages was a scan of them all."""
        with self.lock:
            cache = self.__dict__.setdefault("rsv_index", {})
            idx = cache.get(name)
            if idx is None or idx[0] is not items or idx[1] != len(items):
                by, odd = {}, []
                for i, x in enumerate(items):
                    m = RSV_PREFIX.match(lc(x.get("id") or "").rstrip("/"))
                    keys = {m.group(1)} if m else set()
                    if not m:
                        odd.append(i)
                    if by_vault_id:
                        keys.add(lc((x.get("properties") or {}).get("vaultId")))
                    for k in keys:
                        by.setdefault(k, []).append(i)
                idx = (items, len(items), by, odd)
                cache[name] = idx
        hits = idx[2].get(lc(rsv_id), [])   # in the list's order, each once
        odd = [i for i in idx[3] if encloses(rsv_id, items[i].get("id"))]
        if odd:
            hits = sorted(set(hits).union(odd))
        return [items[i] for i in hits]

    # ---- views of resources (not copied: nothing changes VMs)
    def vm_view(self, vm, expand):
        """A VM as ARM gives it.  Its parts are the world's own, not copied: nothing changes VMs (10,000s
        of them are listed page by page); only the dicts that differ are new."""
        v = {k: x for k, x in vm.items() if k not in ("properties", "resources")}
        v["properties"] = {k: x for k, x in (vm.get("properties") or {}).items() if expand or k != "instanceView"}
        # with $expand: the scenario's instance view, or none (never invented: it would change verdicts)
        res = self.extensions_of(vm)
        if res or "resources" in vm:
            v["resources"] = res
        return v

    def extensions_of(self, vm, name=None):
        """A VM's extensions as ARM gives them (its resources[] + vmExtensions under it), not copied (see
        vm_view); only the one called name when given."""
        res = [r for r in vm.get("resources") or [] if name is None or lc(r.get("name")) == lc(name)]
        seen = {lc(r.get("id")) for r in vm.get("resources") or []}
        with self.lock:
            idx = getattr(self, "ext_index", None)
            if idx is None or idx[0] is not self.vm_extensions or idx[1] != len(self.vm_extensions):
                by_vm = {}
                for ext in self.vm_extensions:
                    by_vm.setdefault(lc(ext.get("id", "")).split("/extensions/")[0], []).append(ext)
                idx = (self.vm_extensions, len(self.vm_extensions), by_vm)
                self.ext_index = idx
        for ext in idx[2].get(lc(vm["id"]), []):
            eid = ext.get("id", "")
            if lc(eid).startswith(lc(vm["id"]) + "/extensions/") and lc(eid) not in seen:
                e = {"name": ext.get("name"), "id": eid, "type": "Microsoft.Compute/virtualMachines/extensions",
                     "location": ext.get("location"), "properties": ext.get("properties") or {}}
                if ext.get("tags"):
                    e["tags"] = ext["tags"]
                if name is None or lc(e.get("name")) == lc(name):
                    res.append(e)
                seen.add(lc(eid))
        return res

    def vm_list_item(self, vm, status_only):
        """One VM as VirtualMachines_ListAll gives it: with statusOnly=true its instance view only (joined
        to the model by id), else the model with resources[] as the scenario's vmListExtensions says."""
        if status_only:
            v = {"name": vm.get("name"), "id": vm.get("id"), "type": vm.get("type", "Microsoft.Compute/virtualMachines"),
                 "location": vm.get("location"), "properties": {}}
            iv = (vm.get("properties") or {}).get("instanceView")
            if iv is not None:
                v["properties"]["instanceView"] = iv
            return v
        v = self.vm_view(vm, False)
        if self.cfg.get("vmListExtensions") != "full" and v.get("resources"):
            v["resources"] = [{"id": e.get("id")} for e in v["resources"]]
        return v

    def expire_tokens(self):
        with self.lock:
            self.revoked_upto = self.token_serial

    def add_log(self, entry):
        with self.lock:
            self.log_seq += 1
            entry["seq"] = self.log_seq
            self.log.append(entry)
            if len(self.log) > 200000:
                del self.log[:100000]


def graph_row(w, res, rtype, keep=True):
    """The Resources table's row of one scenario resource as Resource Graph shows it, from the world's
    index of rows (w.graph_index): Resource Graph answers from an index it keeps, not from ARM at query
    time, and building 10,000s of rows a query held the GIL (and so every other answer) for ~0.3 s a
    tenant.  A row is built again when its resource or the resource's properties object is no longer
    the one it was built from (a replaced list or resource); World.index_graph_rows builds them at start.
    keep=False: built and not kept (key vaults and Recovery Services vaults, whose tags a PUT replaces).
    Rows are shared, never copied: nothing that reads them (kql.run) changes them."""
    hit = w.graph_index.get(id(res)) if keep else None
    props = res.get("properties")
    if hit is not None and hit[0] is res and hit[1] is props and hit[2] == rtype:
        return hit[3]
    rid = res.get("id") or ""
    parts = rid.split("/")
    rg = parts[4] if len(parts) > 4 and lc(parts[3]) == "resourcegroups" else ""
    sid = sub_of(rid)
    if rtype == "microsoft.compute/virtualmachines":
        props = dict(props or {})
        iv = props.pop("instanceView", None)
        # Resource Graph keeps only the power state of the instance view (no VM agent, no disks)
        power = next((s for s in (iv or {}).get("statuses") or []
                      if str(s.get("code", "")).startswith("PowerState/")), None)
        if power:
            props["extended"] = {"instanceView": {"powerState": {
                "code": power.get("code"), "displayStatus": power.get("displayStatus"),
                "level": power.get("level", "Info")}}}
    row = {"id": rid, "name": res.get("name") or parts[-1], "type": rtype,
           "tenantId": w.sub_tenants().get(sid, ""), "kind": res.get("kind", ""),
           "location": lc(res.get("location") or "").replace(" ", ""), "resourceGroup": rg,
           "subscriptionId": sid, "managedBy": res.get("managedBy", ""), "sku": res.get("sku"),
           "plan": res.get("plan"), "properties": props or {},
           "tags": res.get("tags"), "identity": res.get("identity"), "zones": res.get("zones"),
           "extendedLocation": res.get("extendedLocation")}
    if keep:
        w.graph_index[id(res)] = (res, res.get("properties"), rtype, row)
    return row


# ------------------------------------------------------------------------------------------ HTTP
# One JSON encoder for every body: compact, as Azure answers, and without json's cycle check (bodies are
# trees): a 1,000-row page encodes ~15% faster.
JSON = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


class Encoded(list):
    """A JSON array whose items are already encoded (bytes, from World.encoded): encode_body joins them, so
    a page of resources that nothing changes costs a join instead of an encoding."""


def encode_body(body):
    """The bytes of JSON(body), with the Encoded arrays among a dict's values spliced in as they are, in one
    join (each copy of a big page is fresh memory, and page faults are what copies cost here)."""
    if not (isinstance(body, dict) and any(type(v) is Encoded for v in body.values())):
        return JSON(body).encode()
    parts = []
    for k, v in body.items():
        parts.append((b"," if parts else b"{") + JSON(k).encode() + b":")
        if type(v) is Encoded:
            for n, item in enumerate(v):
                parts.append(b"[" if n == 0 else b",")
                parts.append(item)
            parts.append(b"]" if v else b"[]")
        else:
            parts.append(JSON(v).encode())
    parts.append(b"}" if parts else b"{}")
    return b"".join(parts)


class HttpError(Exception):
    def __init__(self, status, body, headers=None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def arm_error(status, code, message, headers=None):
    return HttpError(status, {"error": {"code": code, "message": message}}, headers)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this every response waits ~40 ms for the
    # client's delayed ACK (Nagle), which hides the client's own latency in benchmarks.
    disable_nagle_algorithm = True
    server_version = "kvaudit-azure-emulator"
    sys_version = ""
    timeout = 30

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("emulator: %s\n" % (fmt % args))

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    # ---- plumbing
    @property
    def world(self):
        return self.server.world

    def read_body(self):
        if "chunked" in lc(self.headers.get("Transfer-Encoding", "")):
            out = b""
            while True:
                line = self.rfile.readline(1024)
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(n)
                self.rfile.readline(16)
                if len(out) > 10 << 20:
                    raise HttpError(413, {"error": {"code": "RequestEntityTooLarge", "message": "body too large"}})
        n = int(self.headers.get("Content-Length") or 0)
        if n > 10 << 20:
            raise HttpError(413, {"error": {"code": "RequestEntityTooLarge", "message": "body too large"}})
        return self.rfile.read(n) if n else b""

    def dispatch(self):
        # One clock read for the log's "time" and the start of durationMs: read twice, a thread
        # preempted between the reads logged an end later than the real one (a false overlap).
        start = time.time()
        self.req_id = str(uuid.uuid4())
        raw_path, _, query = self.path.partition("?")
        path = urllib.parse.unquote(raw_path)
        host = self.headers.get("Host", "")
        self.q = {}
        for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True):
            self.q.setdefault(k.lower(), v)
        self.raw_query = query
        self.path_only = path
        self.entry = {"time": iso_at(start), "method": self.command, "host": host, "path": path, "query": query,
                      "authorization": self.headers.get("Authorization") is not None,
                      "token": None, "userAgent": self.headers.get("User-Agent"), "listener": self.server.kind}
        self.surface = self.classify(host, path)
        self.entry["surface"] = self.surface
        control = self.surface == "control"
        fault = None
        try:
            self.body = self.read_body() if self.command in ("POST", "PUT", "PATCH", "DELETE") else b""
            if not control:
                fault = self.world.take_fault(self.command, host, path, query)
            if fault:
                self.entry["fault"] = fault["id"]
                if fault.get("latencyMs"):
                    time.sleep(float(fault["latencyMs"]) / 1000.0)
                if fault.get("expireTokens"):
                    self.world.expire_tokens()
                if fault.get("reset") == "before":
                    self.entry["status"] = 0
                    self.abort()
                    return
                if fault.get("status"):
                    status, body, headers = self.fault_response(fault)
                    return self.send(status, body, headers, fault)
            status, body, headers = self.route()
        except HttpError as e:
            status, body, headers = e.status, e.body, e.headers
        except Exception as e:  # a bug in the emulator: tell the client, loudly
            import traceback
            traceback.print_exc()
            status, body, headers = 500, {"error": {"code": "EmulatorBug", "message": repr(e)}}, {}
        finally:
            # Rounded down, and taken before the answer is written: the logged span never
            # outlasts the real one, so requests a client sent one after the other never overlap.
            self.entry["durationMs"] = int((time.time() - start) * 1000)
        self.send(status, body, headers, fault)

    def classify(self, host, path):
        h = lc(host).rsplit(":", 1)[0] if not host.startswith("[") else lc(host)
        if h.endswith("." + KV_SUFFIX):
            return "keyvault"
        first = path.split("/")[1].lower() if path.count("/") >= 1 else ""
        return {"_emulator": "control", "arm": "arm", "login": "login", "graph": "graph", "metadata": "imds",
                "msi": "msi"}.get(first, "unknown")

    def send(self, status, body, headers, fault):
        if isinstance(body, (dict, list)):
            data = encode_body(body)
            ctype = "application/json; charset=utf-8"
        elif body is None:
            data = b""
            ctype = None
        else:
            data = body if isinstance(body, bytes) else str(body).encode()
            ctype = "application/json; charset=utf-8" if data[:1] in (b"{", b"[") else "text/plain; charset=utf-8"
        if fault and fault.get("padBytes") and isinstance(body, dict):
            # A huge but valid answer: the object plus one unknown member of padBytes characters.
            pad = b', "kvauditPadding": "' + b"x" * int(fault["padBytes"]) + b'"}'
            data = (data[:-1] + pad) if len(body) else b"{" + pad[2:]
        if fault and fault.get("malformed"):
            cut = data[: max(1, len(data) // 2)] if data else b'{"value": ['
            data = cut + b'\x01,,"<truncated'
            ctype = "application/json; charset=utf-8"
        self.entry["status"] = status
        if self.surface != "control":
            self.world.add_log(self.entry)
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")
        self.send_header("x-ms-request-id", self.req_id)
        if self.surface == "arm":
            self.send_header("x-ms-correlation-request-id", self.req_id)
            self.send_header("x-ms-routing-request-id", "WESTEUROPE:%s:%s" % (
                utcnow().strftime("%Y%m%dT%H%M%SZ"), self.req_id))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        if self.command == "HEAD":
            return
        if fault and (fault.get("reset") or fault.get("truncate")):
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            if fault.get("reset"):
                time.sleep(0.1)   # let the client read the status line and headers before the reset
                self.abort()
            else:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            return
        self.wfile.write(data)

    def abort(self):
        """Close with a TCP reset, no TLS close_notify."""
        self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            self.connection.close()
        except OSError:
            pass
        import io
        self.wfile = io.BytesIO()

    def fault_response(self, f):
        status = int(f["status"])
        headers = dict(f.get("headers") or {})
        for k in ("retryAfter", "Retry-After", "retry-after"):
            if f.get(k) is not None:
                headers["Retry-After"] = str(f[k])
        if "body" in f:
            return status, f["body"], headers
        s = self.surface
        if s in ("login", "imds", "msi"):
            err = {429: "too_many_requests" if s != "login" else "temporarily_unavailable",
                   400: "invalid_request", 401: "invalid_client"}.get(status, "server_error")
            return status, {"error": err, "error_description": "Injected fault: HTTP %d" % status}, headers
        if s == "keyvault":
            code = {429: "Throttled", 403: "Forbidden", 404: "NotFound", 401: "Unauthorized"}.get(status, "InternalServerError")
            msg = ("Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached"
                   if status == 429 else "Injected fault: HTTP %d" % status)
            return status, {"error": {"code": code, "message": msg}}, headers
        if s == "graph":
            code = {429: "TooManyRequests", 503: "serviceNotAvailable", 403: "Authorization_RequestDenied",
                    404: "Request_ResourceNotFound"}.get(status, "generalException")
            return status, {"error": {"code": code, "message": "Injected fault: HTTP %d" % status,
                                      "innerError": {"date": iso_now()[:19], "request-id": self.req_id,
                                                     "client-request-id": self.req_id}}}, headers
        if status == 429:
            ra = headers.get("Retry-After", "1")
            return status, {"error": {"code": "SubscriptionRequestsThrottled", "message": (
                "Number of 'read' requests for subscription actor '%s' exceeded. Please try again after '%s' "
                "seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling" % (
                    self.req_id, ra))}}, headers
        code = {500: "InternalServerError", 502: "BadGateway", 503: "ServiceUnavailable", 504: "GatewayTimeout",
                403: "AuthorizationFailed", 404: "NotFound", 409: "Conflict", 400: "BadRequest"}.get(status, "Error")
        return status, {"error": {"code": code, "message": "Injected fault: HTTP %d (tracking id '%s')" % (
            status, self.req_id)}}, headers

    def json_body(self, err=None):
        try:
            return json.loads(self.body.decode("utf-8") or "null")
        except Exception:
            raise err or arm_error(400, "InvalidRequestContent",
                                   "The request content was invalid and could not be deserialized.")

    # ---- routing
    def route(self):
        s = self.surface
        if self.server.kind == "http" and s not in ("imds", "msi"):
            raise HttpError(404, {"error": "not_found", "error_description": "Not found"})
        if s == "control":
            return self.control()
        if s == "login":
            return self.login()
        if s == "imds":
            return self.imds()
        if s == "msi":
            return self.msi()
        if s == "arm":
            return self.arm()
        if s == "graph":
            return self.graph()
        if s == "keyvault":
            return self.keyvault()
        raise HttpError(404, {"error": {"code": "NotFound", "message": "The emulator serves no such endpoint: %s %s" % (
            self.command, self.path_only)}})

    # ------------------------------------------------------------------ control API
    def control(self):
        w = self.world
        p = self.path_only.rstrip("/")
        m = self.command
        if p == "/_emulator/log" and m == "GET":
            since = int(self.q.get("since", "0") or 0)
            with w.lock:
                return 200, [dict(e) for e in w.log if e["seq"] > since], {}
        if p == "/_emulator/log" and m == "DELETE":
            with w.lock:
                w.log.clear()
            return 200, {"cleared": True}, {}
        if p == "/_emulator/faults" and m == "POST":
            doc = self.json_body(HttpError(400, {"error": "faults: invalid JSON"}))
            doc = doc if isinstance(doc, list) else [doc]
            try:
                ids = [w.add_fault(f) for f in doc]
            except (ValueError, re.error, TypeError) as e:
                raise HttpError(400, {"error": "faults: %s" % e})
            return 200, {"ids": ids}, {}
        if p == "/_emulator/faults" and m == "GET":
            with w.lock:
                return 200, [dict(f) for f in w.faults], {}
        if p == "/_emulator/faults" and m == "DELETE":
            with w.lock:
                w.faults.clear()
            return 200, {"cleared": True}, {}
        if p == "/_emulator/issued-tokens" and m == "GET":
            with w.lock:
                return 200, list(w.issued), {}
        if p == "/_emulator/expire-tokens" and m == "POST":
            w.expire_tokens()
            return 200, {"expired": True}, {}
        if p == "/_emulator/config" and m in ("GET", "POST"):
            if m == "POST":
                doc = self.json_body(HttpError(400, {"error": "config: invalid JSON"}))
                if not isinstance(doc, dict):
                    raise HttpError(400, {"error": "config: expected an object"})
                with w.lock:
                    for k, v in doc.items():
                        if k not in w.cfg:
                            raise HttpError(400, {"error": "config: unknown key %s" % k})
                        w.cfg[k] = v
            with w.lock:
                return 200, copy.deepcopy(w.cfg), {}
        mv = re.match(r"^/_emulator/state/vaults/([^/]+)$", p)
        if mv and m == "GET":
            with w.lock:
                for v in w.vaults:
                    if lc(v.get("name")) == lc(mv.group(1)):
                        return 200, copy.deepcopy(v), {}
            raise HttpError(404, {"error": "no such vault"})
        if p == "/_emulator/state/roleAssignments" and m == "GET":
            with w.lock:
                return 200, copy.deepcopy(w.role_assignments), {}
        if p == "/_emulator/shutdown" and m == "POST":
            threading.Thread(target=self.server.stop_all, daemon=True).start()
            return 200, {"stopping": True}, {}
        raise HttpError(404, {"error": "unknown control request %s %s" % (m, p)})

    # ------------------------------------------------------------------ Entra ID
    def oauth_error(self, status, error, code, description, extra=None):
        ts = utcnow().strftime("%Y-%m-%d %H:%M:%SZ")
        body = {"error": error,
                "error_description": "AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s" % (
                    code, description, self.req_id, self.req_id, ts),
                "error_codes": [code], "timestamp": ts, "trace_id": self.req_id, "correlation_id": self.req_id,
                "error_uri": "%s/login/error?code=%d" % (self.world.base, code)}
        if extra:
            body.update(extra)
        return HttpError(status, body)

    def login(self):
        w = self.world
        m = re.match(r"^/login/([^/]+)/oauth2/v2\.0/token$", self.path_only, re.I)
        if not m:
            raise HttpError(404, {"error": "not_found", "error_description": "The emulator serves only "
                                  "POST /login/{tenant}/oauth2/v2.0/token"})
        if self.command != "POST":
            raise self.oauth_error(405, "invalid_request", 900561,
                                   "The endpoint only accepts POST requests. Received a %s request." % self.command)
        tenant_seg = m.group(1)
        form = {}
        for k, v in urllib.parse.parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True):
            form.setdefault(k, v)
        grant = form.get("grant_type", "")
        client_id = lc(form.get("client_id", ""))
        self.entry["grantType"] = grant
        self.entry["clientId"] = client_id or None
        if grant not in ("client_credentials", "password"):
            raise self.oauth_error(400, "unsupported_grant_type", 70003,
                                   "The app requested an unsupported grant type '%s'." % grant)
        scopes = [s for s in form.get("scope", "").split() if s.lower() not in ("openid", "profile", "offline_access")]
        if len(scopes) != 1:
            raise self.oauth_error(400, "invalid_scope", 70011,
                                   "The provided request must include a 'scope' input parameter naming one resource.")
        scope = scopes[0]
        if not scope.endswith("/.default"):
            if grant == "client_credentials":
                raise self.oauth_error(400, "invalid_scope", 1002012,
                                       "The provided value for scope %s is not valid. Client credential flows must "
                                       "have a scope value with /.default suffixed to the resource identifier "
                                       "(application ID URI)." % scope)
            resource = scope.rsplit("/", 1)[0] + "/"
        else:
            resource = scope[: -len(".default")]
        aud = resource[:-1] if resource.endswith("/") else resource
        if w.audience_kind(aud) is None:
            raise self.oauth_error(400, "invalid_resource", 500011,
                                   "The resource principal named %s was not found in the tenant named %s. This can "
                                   "happen if the application has not been installed by the administrator of the "
                                   "tenant or consented to by any user in the tenant. You might have sent your "
                                   "authentication request to the wrong tenant." % (aud, tenant_seg))
        if grant == "password":
            return self.login_password(tenant_seg, form, aud, scope)
        tenant = w.tenant_by_name(tenant_seg)
        if tenant is None:
            raise self.oauth_error(400, "invalid_request", 90002,
                                   "Tenant '%s' not found. Check to make sure you have the correct tenant ID and are "
                                   "signing into the correct cloud." % tenant_seg)
        tid = tenant["tenantId"]
        app = w.apps.get(client_id)
        assertion = form.get("client_assertion")
        # the credential first (Entra checks the client before the tenant's service principal)
        cred = None
        if assertion is not None:
            if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
                raise self.oauth_error(400, "invalid_request", 50027,
                                       "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.")
            try:
                header, claims, parts = jwt_split(assertion)
            except Exception:
                raise self.oauth_error(400, "invalid_client", 50027,
                                       "JWT token is invalid or malformed.")
            if lc(claims.get("iss")) == client_id and client_id:
                cred = "certificate"
                self.check_cert_assertion(app, client_id, tenant_seg, header, claims, parts)
            else:
                cred = "federated"
                self.check_federated(app, client_id, claims)
        elif form.get("client_secret") is not None:
            cred = "secret"
            if app is None or app.get("secret") is None or not hmac.compare_digest(
                    str(app["secret"]).encode(), form["client_secret"].encode()):
                if app is None:
                    raise self.unknown_app(client_id, tenant)
                raise self.oauth_error(401, "invalid_client", 7000215,
                                       "Invalid client secret provided. Ensure the secret being sent in the request is "
                                       "the client secret value, not the client secret ID, for a secret added to app "
                                       "'%s'." % client_id)
        else:
            raise self.oauth_error(400, "invalid_client", 7000218,
                                   "The request body must contain the following parameter: 'client_assertion' or "
                                   "'client_secret'.")
        self.entry["credential"] = cred
        sp = w.sp_in(tenant, client_id)
        if sp is None:
            raise self.unknown_app(client_id, tenant)
        token, claims, life = w.issue({"oid": lc(sp["objectId"]), "sub": lc(sp["objectId"]), "idtyp": "app",
                                       "appid": client_id, "appidacr": "1" if cred == "secret" else "2",
                                       "idp": "https://sts.windows.net/%s/" % tid}, aud, tid)
        self.entry["issued"] = {"aud": aud, "tid": tid, "oid": claims["oid"], "idtyp": "app"}
        return 200, {"token_type": "Bearer", "expires_in": life, "ext_expires_in": life, "access_token": token}, {}

    def unknown_app(self, client_id, tenant):
        return self.oauth_error(400, "unauthorized_client", 700016,
                                "Application with identifier '%s' was not found in the directory '%s'. This can "
                                "happen if the application has not been installed by the administrator of the tenant "
                                "or consented to by any user in the tenant. You may have sent your authentication "
                                "request to the wrong tenant." % (client_id, tenant["displayName"]))

    def check_cert_assertion(self, app, client_id, tenant_seg, header, claims, parts):
        if app is None:
            raise self.oauth_error(400, "unauthorized_client", 700016,
                                   "Application with identifier '%s' was not found." % client_id)
        if lc(claims.get("sub")) != client_id:
            raise self.oauth_error(401, "invalid_client", 700023,
                                   "Client assertion audience/subject claim does not match: sub must be the client_id.")
        alg = header.get("alg")
        if alg not in ("RS256", "PS256"):
            raise self.oauth_error(401, "invalid_client", 5002738,
                                   "Invalid JWT token. '%s' is not a supported signature algorithm." % alg)
        cert = None
        for c in app["certs"]:
            if header.get("x5t") and header["x5t"] == b64url(c.fingerprint(hashes.SHA1())):
                cert = c
            if header.get("x5t#S256") and header["x5t#S256"] == b64url(c.fingerprint(hashes.SHA256())):
                cert = c
        if cert is None:
            raise self.oauth_error(401, "invalid_client", 700027,
                                   "The certificate with identifier used to sign the client assertion is not "
                                   "registered on application. [Reason - The key was not found., Thumbprint of key "
                                   "used by client: '%s']" % (header.get("x5t") or header.get("x5t#S256")))
        try:
            sig = b64url_dec(parts[2])
            data = (parts[0] + "." + parts[1]).encode()
            pad = padding.PKCS1v15() if alg == "RS256" else padding.PSS(
                mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
            cert.public_key().verify(sig, data, pad, hashes.SHA256())
        except (InvalidSignature, ValueError, TypeError):
            raise self.oauth_error(401, "invalid_client", 700027, "Client assertion failed signature validation.")
        auds = set()
        for host in ("127.0.0.1:%d" % self.world.port, "localhost:%d" % self.world.port):
            t = self.world.tenant_by_name(tenant_seg)
            for seg in {tenant_seg, t["tenantId"] if t else tenant_seg, t["defaultDomain"] if t else tenant_seg}:
                auds.add(lc("https://%s/login/%s/oauth2/v2.0/token" % (host, seg)))
        aud = claims.get("aud")
        aud_list = aud if isinstance(aud, list) else [aud]
        if not any(lc(a) in auds for a in aud_list if isinstance(a, str)):
            raise self.oauth_error(401, "invalid_client", 700021,
                                   "Client assertion application identifier doesn't match 'client_id' parameter or "
                                   "the audience is invalid: '%s'." % aud)
        now = time.time()
        if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] < now - 300:
            raise self.oauth_error(401, "invalid_client", 700024, "Client assertion is not within its valid time range.")
        if isinstance(claims.get("nbf"), (int, float)) and claims["nbf"] > now + 300:
            raise self.oauth_error(401, "invalid_client", 700024, "Client assertion is not within its valid time range.")

    def check_federated(self, app, client_id, claims):
        if app is None:
            raise self.oauth_error(400, "unauthorized_client", 700016,
                                   "Application with identifier '%s' was not found." % client_id)
        aud = claims.get("aud")
        aud_list = aud if isinstance(aud, list) else [aud]
        for fed in app.get("federated") or []:
            if claims.get("iss") == fed.get("issuer") and claims.get("sub") == fed.get("subject") and \
                    fed.get("audience", FED_AUDIENCE) in aud_list:
                exp = claims.get("exp")
                if not isinstance(exp, (int, float)) or exp < time.time():
                    raise self.oauth_error(400, "invalid_client", 700024,
                                           "Client assertion is not within its valid time range.")
                return
        raise self.oauth_error(400, "invalid_client", 70021,
                               "No matching federated identity record found for presented assertion. Assertion "
                               "Issuer: '%s'. Assertion Subject: '%s'. Assertion Audience: '%s'." % (
                                   claims.get("iss"), claims.get("sub"), aud))

    def login_password(self, tenant_seg, form, aud, scope):
        w = self.world
        username = form.get("username", "")
        password = form.get("password", "")
        candidates = w.users_named(username)
        self.entry["credential"] = "password"
        self.entry["username"] = username
        if not candidates:
            raise self.oauth_error(400, "invalid_grant", 50034,
                                   "The user account %s does not exist in the directory. To sign into this "
                                   "application, the account must be added to the directory." % username)
        person = candidates[0][1]["signInName"]
        stored = w.passwords.get(person)
        if stored is None or not hmac.compare_digest(str(stored).encode(), password.encode()):
            raise self.oauth_error(400, "invalid_grant", 50126,
                                   "Error validating credentials due to invalid username or password.")
        if lc(tenant_seg) in ("organizations", "common"):
            home = [(t, u) for t, u in candidates if u["homeTenantId"] == t["tenantId"]]
            tenant, user = (home or candidates)[0]
        else:
            tenant = w.tenant_by_name(tenant_seg)
            if tenant is None:
                raise self.oauth_error(400, "invalid_request", 90002, "Tenant '%s' not found." % tenant_seg)
            match = [(t, u) for t, u in candidates if t is tenant]
            if not match:
                raise self.oauth_error(400, "invalid_grant", 50020,
                                       "User account '%s' from identity provider 'https://sts.windows.net/%s/' does "
                                       "not exist in tenant '%s' and cannot access the application '%s'(Microsoft "
                                       "Azure CLI) in that tenant. The account needs to be added as an external user "
                                       "in the tenant first." % (username, candidates[0][1]["homeTenantId"],
                                                                 tenant["displayName"], form.get("client_id")))
            user = match[0][1]
        tid = tenant["tenantId"]
        guest = lc(user.get("userType")) == "guest"
        claims_extra = {"oid": lc(user["objectId"]), "sub": stable_guid("sub", tid, user["objectId"]), "idtyp": "user",
                        "upn": user.get("userPrincipalName"), "unique_name": user.get("userPrincipalName"),
                        "name": user.get("displayName"), "acct": 1 if guest else 0,
                        "appid": lc(form.get("client_id") or AZ_CLI_APP_ID), "appidacr": "0",
                        "scp": "user_impersonation", "idp": "https://sts.windows.net/%s/" % user["homeTenantId"]}
        if user["homeTenantId"] == tid:
            claims_extra.pop("idp")   # idp is absent when it equals iss
        token, claims, life = w.issue(claims_extra, aud, tid)
        self.entry["issued"] = {"aud": aud, "tid": tid, "oid": claims["oid"], "idtyp": "user"}
        return 200, {"token_type": "Bearer", "scope": scope, "expires_in": life, "ext_expires_in": life,
                     "access_token": token}, {}

    # ------------------------------------------------------------------ managed identity
    def mi_token(self, style):
        w = self.world
        resource = self.q.get("resource")
        if not resource:
            raise HttpError(400, {"error": "invalid_request", "error_description": "Required query variable 'resource' is missing"})
        aud = resource
        if w.audience_kind(aud) is None:
            raise HttpError(400, {"error": "invalid_resource", "error_description":
                                  "AADSTS500011: The resource principal named %s was not found in the tenant." % resource})
        want = lc(self.q.get("client_id") or "")
        want_oid = lc(self.q.get("object_id") or self.q.get("principal_id") or "")
        mis = [m for m in w.mis if (not want or m["clientId"] == want) and (not want_oid or m["objectId"] == want_oid)]
        if not mis:
            raise HttpError(400, {"error": "invalid_request", "error_description": "Identity not found"})
        mi = mis[0]
        if style == "msi" and self.headers.get("X-IDENTITY-HEADER") != mi["identityHeader"]:
            raise HttpError(401, {"error": "unauthorized", "error_description":
                                  "X-IDENTITY-HEADER is missing or does not match IDENTITY_HEADER"})
        token, claims, life = w.issue({"oid": mi["objectId"], "sub": mi["objectId"], "idtyp": "app",
                                       "appid": mi["clientId"], "appidacr": "2",
                                       "idp": "https://sts.windows.net/%s/" % mi["tenantId"],
                                       "xms_mirid": mi.get("resourceId", "/subscriptions/emulator/resourcegroups/"
                                                           "emulator/providers/Microsoft.ManagedIdentity/"
                                                           "userAssignedIdentities/emulator")}, aud, mi["tenantId"])
        self.entry["issued"] = {"aud": aud, "tid": mi["tenantId"], "oid": mi["objectId"], "idtyp": "app"}
        now = int(time.time())
        if style == "imds":
            return 200, {"access_token": token, "client_id": mi["clientId"], "expires_in": str(life),
                         "expires_on": str(now + life), "ext_expires_in": str(life), "not_before": str(now),
                         "resource": resource, "token_type": "Bearer"}, {}
        return 200, {"access_token": token, "expires_on": str(now + life), "resource": resource,
                     "token_type": "Bearer", "client_id": mi["clientId"]}, {}

    def imds(self):
        if not re.match(r"^/metadata/identity/oauth2/token/?$", self.path_only, re.I):
            raise HttpError(404, {"error": "not_found", "error_description": "Not found"})
        if self.command != "GET":
            raise HttpError(405, {"error": "method_not_allowed", "error_description": "Not allowed"})
        if lc(self.headers.get("Metadata", "")) != "true":
            raise HttpError(400, {"error": "invalid_request", "error_description": "Required metadata header not specified"})
        if "api-version" not in self.q:
            raise HttpError(400, {"error": "invalid_request", "error_description": "Required query variable 'api-version' is missing"})
        if self.q["api-version"] != "2018-02-01":
            raise HttpError(400, {"error": "invalid_request", "error_description": "Invalid api-version %s" % self.q["api-version"]})
        return self.mi_token("imds")

    def msi(self):
        if not re.match(r"^/msi/token/?$", self.path_only, re.I):
            raise HttpError(404, {"error": "not_found", "error_description": "Not found"})
        if self.q.get("api-version") != "2019-08-01":
            raise HttpError(400, {"error": "invalid_request", "error_description":
                                  "api-version must be 2019-08-01, got %r" % self.q.get("api-version")})
        return self.mi_token("msi")

    # ------------------------------------------------------------------ bearer tokens
    def bearer(self, kind):
        """Validated claims for surface kind (arm|graph|keyvault), or raise the surface's 401."""
        w = self.world
        auth = self.headers.get("Authorization")
        if not auth:
            raise self.unauthorized(kind, "missing", "Authentication failed. The 'Authorization' header is missing.")
        scheme, _, tok = auth.partition(" ")
        tok = tok.strip()
        if lc(scheme) != "bearer" or not tok:
            raise self.unauthorized(kind, "malformed", "Authentication failed. The 'Authorization' header is "
                                    "provided in an invalid format.")
        claims, err = w.verify(tok)
        if claims:
            self.entry["token"] = {k: claims.get(k) for k in ("aud", "tid", "oid", "idtyp", "appid")}
        if err:
            raise self.unauthorized(kind, err[0], err[1])
        if w.audience_kind(claims.get("aud")) != kind:
            allowed = {"arm": "'https://management.core.windows.net/','https://management.core.windows.net',"
                              "'https://management.azure.com/','https://management.azure.com'",
                       "graph": "'https://graph.microsoft.com'", "keyvault": "'%s'" % KV_AUDIENCE}[kind]
            raise self.unauthorized(kind, "audience", "The access token has been obtained for wrong audience or "
                                    "resource '%s'. It should exactly match with one of the allowed audiences %s." % (
                                        claims.get("aud"), allowed))
        return claims

    def unauthorized(self, kind, why, message):
        w = self.world
        if kind == "arm":
            code = {"missing": "AuthenticationFailed", "expired": "ExpiredAuthenticationToken"}.get(
                why, "InvalidAuthenticationToken")
            desc = {"missing": "The authentication failed because of missing 'Authorization' header.",
                    "expired": "The access token expiry UTC time is earlier than current UTC time."}.get(
                why, "The access token is invalid or was obtained for the wrong audience.")
            return arm_error(401, code, message, {"WWW-Authenticate": 'Bearer authorization_uri="%s/login/", '
                                                  'error="invalid_token", error_description="%s"' % (w.base, desc)})
        if kind == "graph":
            gm = {"missing": "Access token is empty.", "expired": "Lifetime validation failed, the token is expired.",
                  "audience": "Invalid audience.", "signature": "Access token validation failure. Invalid signature.",
                  "malformed": "Access token validation failure. Invalid audience."}.get(why, message)
            return HttpError(401, {"error": {"code": "InvalidAuthenticationToken", "message": gm,
                                             "innerError": {"date": iso_now()[:19], "request-id": self.req_id,
                                                            "client-request-id": self.req_id}}},
                             {"WWW-Authenticate": 'Bearer realm="", authorization_uri="%s/login/common/oauth2/'
                                                  'authorize", client_id="%s"' % (w.base, GRAPH_APP_ID)})
        # Key Vault: the challenge names the vault's tenant
        vault = self.kv_vault(required=False)
        tid = lc(vault["properties"].get("tenantId")) if vault else "common"
        km = {"missing": "Unauthorized", "expired": "AKV10000: Request is missing a Bearer or PoP token.",
              "audience": "AKV10022: Invalid audience. Expected %s, found: %s." % (KV_AUDIENCE, message)}.get(why, message)
        if why == "expired":
            km = "AKV10032: Token expired. " + message
        return HttpError(401, {"error": {"code": "Unauthorized", "message": km}},
                         {"WWW-Authenticate": 'Bearer authorization="%s/login/%s", resource="%s"' % (
                             w.base, tid, KV_AUDIENCE)})

    # ------------------------------------------------------------------ ARM
    def api_version(self, supported):
        v = self.q.get("api-version")
        if v is None:
            raise arm_error(400, "MissingApiVersionParameter",
                            "The api-version query parameter (?api-version=) is required for all requests.")
        if v != supported:
            raise arm_error(400, "InvalidApiVersionParameter",
                            "The api-version '%s' is invalid. The supported versions are '%s'." % (v, supported))

    def arm_headers(self):
        w = self.world
        with w.lock:
            w.reads_left = w.reads_left - 1 if w.reads_left > 1 else 11999
            n = w.reads_left
        if self.command == "GET":
            return {"x-ms-ratelimit-remaining-subscription-reads": str(n % 250),
                    "x-ms-ratelimit-remaining-subscription-global-reads": str(n % 3750)}
        if self.command == "DELETE":
            return {"x-ms-ratelimit-remaining-subscription-deletes": "199",
                    "x-ms-ratelimit-remaining-subscription-global-deletes": "2999"}
        return {"x-ms-ratelimit-remaining-subscription-writes": "199",
                "x-ms-ratelimit-remaining-subscription-global-writes": "2999"}

    def arm_throttle(self, c, path):
        """ARM's token bucket for reads per subscription and principal (scenario "armThrottle"): the
        remaining-reads headers, or 429 SubscriptionRequestsThrottled with Retry-After when it is empty."""
        w = self.world
        cfg = w.cfg.get("armThrottle")
        sid = sub_of(path)
        if not cfg or self.command != "GET" or sid is None:
            return {}
        size, rate = float(cfg.get("reads", 250)), float(cfg.get("refillPerSec", 25))
        key = (sid, lc(c.get("oid")))
        now = time.monotonic()
        with w.lock:
            tokens, last = w.buckets.get(key, (size, now))
            tokens = min(size, tokens + (now - last) * rate)
            if tokens < 1:
                w.buckets[key] = (tokens, now)
                wait = max(1, int(math.ceil((1 - tokens) / rate)))
                raise arm_error(429, "SubscriptionRequestsThrottled", (
                    "Number of 'read' requests for subscription actor '%s' exceeded. Please try again after '%d' "
                    "seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling" % (
                        self.req_id, wait)), {
                    "Retry-After": str(wait), "x-ms-ratelimit-remaining-subscription-reads": "0",
                    "x-ms-ratelimit-remaining-subscription-global-reads": str(int(size * 15) - int(size))})
            tokens -= 1
            w.buckets[key] = (tokens, now)
        return {"x-ms-ratelimit-remaining-subscription-reads": str(int(tokens)),
                "x-ms-ratelimit-remaining-subscription-global-reads": str(int(size * 14 + tokens))}

    def caller_name(self, c):
        return c.get("upn") or c.get("appid") or c.get("oid")

    def forbidden(self, c, action, scope):
        return arm_error(403, "AuthorizationFailed",
                         "The client '%s' with object id '%s' does not have authorization to perform action '%s' over "
                         "scope '%s' or the scope is invalid. If access was recently granted, please refresh your "
                         "credentials." % (self.caller_name(c), c.get("oid"), action, scope))

    def rule(self, c):
        return self.world.access.get(lc(c.get("oid"))) or {}

    def sees_sub(self, c, sub):
        if lc(sub.get("tenantId")) != lc(c.get("tid")):
            return False
        allowed = self.rule(c).get("subscriptions")
        return allowed is None or lc(sub.get("subscriptionId")) in [lc(x) for x in allowed]

    def check_sub(self, c, sub_id, action, scope, write=False):
        """The subscription object, or raise what ARM says for it."""
        w = self.world
        sub = w.subscription(sub_id)
        if sub is None:
            raise arm_error(404, "SubscriptionNotFound", "The subscription '%s' could not be found." % sub_id)
        if lc(sub.get("tenantId")) != lc(c.get("tid")):
            stid = lc(sub.get("tenantId"))
            raise arm_error(401, "InvalidAuthenticationTokenTenant",
                            "The access token is from the wrong issuer 'https://sts.windows.net/%s/'. It must match "
                            "the tenant 'https://sts.windows.net/%s/' associated with this subscription. Please use "
                            "the authority (URL) 'https://login.windows.net/%s' to get the token. Note, if the "
                            "subscription is transferred to another tenant there is no impact to the services, but "
                            "information about new tenant could take time to propagate (up to an hour). If you just "
                            "transferred your subscription and see this error message, please try back later." % (
                                c.get("tid"), stid, stid),
                            {"WWW-Authenticate": 'Bearer authorization_uri="%s/login/%s", error="invalid_token", '
                                                 'error_description="The access token is from the wrong issuer."' % (
                                                     w.base, stid)})
        if not self.sees_sub(c, sub):
            raise self.forbidden(c, action, scope)
        r = self.rule(c)
        for d in r.get("deny") or []:
            if encloses(d, scope):
                raise self.forbidden(c, action, scope)
        if write and r.get("readOnly"):
            raise self.forbidden(c, action, scope)
        if "actions" in r and not action_matches(r.get("actions"), r.get("notActions"), action):
            raise self.forbidden(c, action, scope)
        return sub

    def permission_entries(self, c, scope):
        """What Permissions_ListForResource says the caller may do at scope, from the same access rule
        that check_sub enforces: its actions/notActions, else */read when readOnly, else * (Owner)."""
        sid = sub_of(scope)
        if sid is None:
            raise arm_error(400, "InvalidScope", "The scope '%s' is not supported by the emulator." % scope)
        sub = next((s for s in self.world.subscriptions if lc(s.get("subscriptionId")) == lc(sid)), None)
        if sub is None:
            raise arm_error(404, "SubscriptionNotFound", "The subscription '%s' could not be found." % sid)
        if lc(sub.get("tenantId")) != lc(c.get("tid")):
            self.check_sub(c, sid, "Microsoft.Authorization/permissions/read", scope)   # 401, the wrong tenant
        # Anyone may list their own permissions: none where the rule gives none.
        if not self.sees_sub(c, sub) or self.denied(c, scope):
            return []
        r = self.rule(c)
        if "actions" in r:
            actions, not_actions = list(r.get("actions") or []), list(r.get("notActions") or [])
        elif r.get("readOnly"):
            actions, not_actions = ["*/read"], []
        else:
            actions, not_actions = ["*"], []
        return [{"actions": actions, "notActions": not_actions, "dataActions": [], "notDataActions": []}]

    def patch_vault(self, c, vid, m):
        """Vaults_Update: only the given properties change; what Azure refuses, refused the same way."""
        w = self.world
        body = self.json_body()
        if not isinstance(body, dict) or not isinstance(body.get("properties", {}), dict) or \
                not isinstance(body.get("tags", {}), dict):
            raise arm_error(400, "InvalidRequestContent",
                            "The request content was invalid and could not be deserialized.")
        props = body.get("properties") or {}
        for k, v in props.items():
            if k in VAULT_PATCH_BOOLS:
                if not isinstance(v, bool):
                    raise arm_error(400, "BadRequest", "The property \"%s\" must be a boolean." % k)
            elif k == "softDeleteRetentionInDays":
                if not isinstance(v, int) or isinstance(v, bool) or not 7 <= v <= 90:
                    raise arm_error(400, "BadRequest", "The property \"softDeleteRetentionInDays\" must be "
                                    "between 7 and 90.")
            elif k not in ("publicNetworkAccess", "networkAcls"):
                raise arm_error(400, "BadRequest", "The emulator does not update the vault property \"%s\"." % k)
        with w.lock:
            vault = self.find_vault(vid, m)
            cur = vault.setdefault("properties", {})
            if props.get("enablePurgeProtection") is False and cur.get("enablePurgeProtection") is True:
                raise arm_error(400, "BadRequest", "The property \"enablePurgeProtection\" cannot be set to false. "
                                "Enabling the purge protection for a vault is an irreversible action.")
            if props.get("enableSoftDelete") is False and cur.get("enableSoftDelete", True) is not False:
                raise arm_error(400, "BadRequest", "The property \"enableSoftDelete\" cannot be set to false. "
                                "Enabling the soft delete for a vault is an irreversible action.")
            for k, v in props.items():
                cur[k] = copy.deepcopy(v)
            if "tags" in body:
                vault["tags"] = copy.deepcopy(body["tags"])
            sd = vault.setdefault("systemData", {})
            sd["lastModifiedBy"] = self.caller_name(c)
            sd["lastModifiedByType"] = "User" if c.get("idtyp") == "user" else "Application"
            sd["lastModifiedAt"] = iso_now()
            return copy.deepcopy(vault)

    def denied(self, c, rid):
        return any(encloses(d, rid) for d in self.rule(c).get("deny") or [])

    def page(self, items, transform=None, encode=None):
        """One page of items per the skiptoken, with nextLink; transform (e.g. copy.deepcopy) is applied
        to the page's items only, or encode (an item's JSON, World.encoded) makes the page's value an
        Encoded array."""
        w = self.world
        with w.lock:
            cfg = dict(w.cfg)
        size = max(1, int(cfg["pageSize"]))
        tok = self.q.get("$skiptoken")
        offset, emptied = 0, 0
        if tok:
            try:
                d = json.loads(b64url_dec(tok))
                offset, emptied = int(d["o"]), int(d.get("e", 0))
            except Exception:
                raise arm_error(400, "InvalidSkipToken", "The skip token '%s' is invalid." % tok)

        def link(o, e):
            params = [(k, v) for k, v in urllib.parse.parse_qsl(self.raw_query, keep_blank_values=True)
                      if k.lower() != "$skiptoken"]
            params.append(("$skiptoken", b64url(json.dumps({"o": o, "e": e}).encode())))
            base = cfg.get("nextLinkBase") or w.base
            raw_path = self.path.partition("?")[0]
            return base.rstrip("/") + raw_path + "?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote,
                                                                              safe="$'(),")
        body = {"value": [], "nextLink": None}
        if cfg["emptyPage"] == "middle" and not emptied and offset == size and len(items) > size:
            body["nextLink"] = link(offset, 1)
            return body
        if cfg["emptyPage"] == "end" and offset >= len(items) and offset > 0:
            pass   # the trailing empty page
        body["value"] = items[offset: offset + size]
        if transform:
            body["value"] = [transform(x) for x in body["value"]]
        elif encode:
            body["value"] = Encoded(encode(x) for x in body["value"])
        if offset + size < len(items):
            body["nextLink"] = link(offset + size, emptied)
        elif cfg["emptyPage"] == "end" and offset < len(items) and len(items) > 0:
            body["nextLink"] = link(len(items), emptied)
        if body["nextLink"] is None:
            last = cfg["lastNextLink"]
            if last == "absent":
                del body["nextLink"]
            elif last == "empty":
                body["nextLink"] = ""
        return body

    def arm(self):
        w = self.world
        path = self.path_only[len("/arm"):] or "/"
        c = self.bearer("arm")
        meth = self.command
        if re.match(r"^/providers/Microsoft\.ResourceGraph/resources/?$", path, re.I):
            if meth != "POST":
                raise arm_error(405, "HttpMethodNotAllowed", "The HTTP method '%s' is not supported." % meth)
            self.api_version(V_GRAPH_QUERY)
            return self.resource_graph(c)
        H = self.arm_headers()
        H.update(self.arm_throttle(c, path))
        ID = r"([^/]+)"
        m = re.match(r"^/tenants/?$", path, re.I)
        if m and meth == "GET":
            self.api_version(V_SUBS)
            items = [{"id": "/tenants/" + t["tenantId"], "tenantId": t["tenantId"], "countryCode": t["countryCode"],
                      "displayName": t["displayName"], "domains": [t["defaultDomain"]],
                      "tenantCategory": "Home", "defaultDomain": t["defaultDomain"], "tenantType": "AAD",
                      "tenantBrandingLogoUrl": None} for t in w.tenants_of(c)]
            return 200, self.page(items), H
        m = re.match(r"^/subscriptions/?$", path, re.I)
        if m and meth == "GET":
            self.api_version(V_SUBS)
            items = [copy.deepcopy(s) for s in w.subscriptions if self.sees_sub(c, s)]
            return 200, self.page(items), H
        m = re.match(r"^/subscriptions/%s/?$" % ID, path, re.I)
        if m and meth == "GET":
            self.api_version(V_SUBS)
            sid = m.group(1)
            sub = w.subscription(sid)
            if sub is None or (lc(sub.get("tenantId")) == lc(c["tid"]) and not self.sees_sub(c, sub)):
                raise arm_error(404, "SubscriptionNotFound", "The subscription '%s' could not be found." % sid)
            self.check_sub(c, sid, "Microsoft.Resources/subscriptions/read", "/subscriptions/" + sid)
            return 200, copy.deepcopy(sub), H
        m = re.match(r"^/subscriptions/%s/providers/Microsoft\.Compute/virtualMachines/?$" % ID, path, re.I)
        if m and meth == "GET":
            self.api_version(V_VM)
            sid = m.group(1)
            self.check_sub(c, sid, "Microsoft.Compute/virtualMachines/read", "/subscriptions/" + sid)
            status_only = self.q.get("statusonly")
            if self.q.get("$expand") is not None:
                # VirtualMachines_ListAll: "'instanceView' ... can only be specified if a valid $filter option is
                # specified" (a scale set's VMs), which the emulator does not serve.
                raise arm_error(400, "InvalidParameter", "The value '%s' of parameter '$expand' is not allowed "
                                "without a valid $filter on 'virtualMachineScaleSet/id'." % self.q.get("$expand"))
            if self.q.get("$filter") is not None:
                raise arm_error(400, "InvalidParameter", "The $filter '%s' is not supported. Allowed value is "
                                "'virtualMachineScaleSet/id' eq '<scale set ID>'." % self.q.get("$filter"))
            if status_only is not None and lc(status_only) not in ("true", "false"):
                raise arm_error(400, "InvalidParameter", "The value '%s' of parameter 'statusOnly' is invalid. "
                                "Allowed values are 'true' and 'false'." % status_only)
            items = [vm for vm in w.in_sub("vms", w.vms, sid) if not self.denied(c, vm["id"])]
            status_only = lc(status_only or "") == "true"
            return 200, self.page(items, encode=lambda vm: w.vm_list_json(vm, status_only)), H
        m = re.match(r"^(/subscriptions/%s/resourceGroups/%s/providers/Microsoft\.Compute/virtualMachines/%s)/"
                     r"extensions(?:/([^/]+))?/?$" % (ID, ID, ID), path, re.I)
        if m and meth == "GET":
            self.api_version(V_VM)
            vm_id, sid = m.group(1), m.group(2)
            self.check_sub(c, sid, "Microsoft.Compute/virtualMachines/extensions/read", path.rstrip("/"))
            vm = self.vm_by_id(vm_id)
            if vm is None:
                raise arm_error(404, "ResourceNotFound", "The Resource 'Microsoft.Compute/virtualMachines/%s' under "
                                "resource group '%s' was not found. For more details please go to "
                                "https://aka.ms/ARMResourceNotFoundFix" % (m.group(4), m.group(3)))
            exts = w.extensions_of(vm, m.group(5))
            if m.group(5) is None:
                # VirtualMachineExtensions_List: every extension at once, no paging
                return 200, {"value": exts}, H
            ext = next((e for e in exts if lc(e.get("name")) == lc(m.group(5))), None)
            if ext is None:
                raise arm_error(404, "NotFound", "The entity was not found in this Azure location.")
            return 200, ext, H
        m = re.match(r"^/subscriptions/%s/resourceGroups/%s/providers/Microsoft\.Compute/virtualMachines/%s/?$" % (
            ID, ID, ID), path, re.I)
        if m and meth == "GET":
            self.api_version(V_VM)
            sid = m.group(1)
            self.check_sub(c, sid, "Microsoft.Compute/virtualMachines/read", path)
            vm = self.vm_by_id(path.rstrip("/"))
            if vm is None:
                raise arm_error(404, "ResourceNotFound", "The Resource 'Microsoft.Compute/virtualMachines/%s' under "
                                "resource group '%s' was not found. For more details please go to "
                                "https://aka.ms/ARMResourceNotFoundFix" % (m.group(3), m.group(2)))
            return 200, w.vm_view(vm, lc(self.q.get("$expand", "")) == "instanceview"), H
        m = re.match(r"^/subscriptions/%s/providers/Microsoft\.Compute/disks/?$" % ID, path, re.I)
        if m and meth == "GET":
            self.api_version(V_DISK)
            sid = m.group(1)
            self.check_sub(c, sid, "Microsoft.Compute/disks/read", "/subscriptions/" + sid)
            items = [d for d in w.in_sub("disks", w.disks, sid) if not self.denied(c, d["id"])]
            return 200, self.page(items, encode=w.encoded), H   # not copied: nothing changes disks
        m = re.match(r"^/subscriptions/%s/providers/Microsoft\.KeyVault/vaults/?$" % ID, path, re.I)
        if m and meth == "GET":
            self.api_version(V_KV)
            sid = m.group(1)
            self.check_sub(c, sid, "Microsoft.KeyVault/vaults/read", "/subscriptions/" + sid)
            with w.lock:
                items = [copy.deepcopy(v) for v in w.vaults if sub_of(v.get("id")) == lc(sid)
                         and not self.denied(c, v["id"])]
            return 200, self.page(items), H
        m = re.match(r"^/subscriptions/%s/resourceGroups/%s/providers/Microsoft\.KeyVault/vaults/%s/?$" % (
            ID, ID, ID), path, re.I)
        if m and meth == "GET":
            self.api_version(V_KV)
            self.check_sub(c, m.group(1), "Microsoft.KeyVault/vaults/read", path)
            return 200, copy.deepcopy(self.find_vault(path, m)), H
        if m and meth == "PATCH":
            self.api_version(V_KV)
            self.check_sub(c, m.group(1), "Microsoft.KeyVault/vaults/write", path.rstrip("/"), write=True)
            return 200, self.patch_vault(c, path, m), H
        m = re.match(r"^(/subscriptions/%s/resourceGroups/%s/providers/Microsoft\.KeyVault/vaults/%s)/accessPolicies/"
                     r"([^/]+)/?$" % (ID, ID, ID), path, re.I)
        if m:
            if meth != "PUT":
                raise arm_error(405, "HttpMethodNotAllowed", "The HTTP method '%s' is not supported." % meth)
            self.api_version(V_KV)
            self.check_sub(c, m.group(2), "Microsoft.KeyVault/vaults/accessPolicies/write", m.group(1), write=True)
            return self.access_policies(c, m) + (H,)
        m = re.match(r"^(/subscriptions/.*?)/providers/Microsoft\.Authorization/permissions/?$", path, re.I)
        if m and meth == "GET":
            self.api_version(V_AUTHZ)
            return 200, self.page(self.permission_entries(c, m.group(1).rstrip("/"))), H
        m = re.match(r"^(.*?)/providers/Microsoft\.Authorization/roleAssignments/?$", path, re.I)
        if m and meth == "GET":
            self.api_version(V_AUTHZ)
            return 200, self.list_role_assignments(c, m.group(1)), H
        m = re.match(r"^(.*?)/providers/Microsoft\.Authorization/roleAssignments/%s/?$" % ID, path, re.I)
        if m and meth in ("GET", "PUT", "DELETE"):
            self.api_version(V_AUTHZ)
            return self.role_assignment(c, m.group(1), m.group(2)) + (H,)
        m = re.match(r"^/subscriptions/%s/providers/Microsoft\.Authorization/roleDefinitions/%s/?$" % (ID, ID), path, re.I)
        if m and meth == "GET":
            self.api_version(V_AUTHZ)
            sid, rid = m.group(1), lc(m.group(2))
            self.check_sub(c, sid, "Microsoft.Authorization/roleDefinitions/read", "/subscriptions/" + sid)
            return 200, self.role_definition(sid, rid), H
        m = re.match(r"^/subscriptions/%s/providers/Microsoft\.RecoveryServices/vaults/?$" % ID, path, re.I)
        if m and meth == "GET":
            self.api_version(V_RSV)
            sid = m.group(1)
            self.check_sub(c, sid, "Microsoft.RecoveryServices/vaults/read", "/subscriptions/" + sid)
            items = [copy.deepcopy(v) for v in w.rsvs if sub_of(v.get("id")) == lc(sid) and not self.denied(c, v["id"])]
            return 200, self.page(items), H
        m = re.match(r"^(/subscriptions/%s/resourceGroups/%s/providers/Microsoft\.RecoveryServices/vaults/%s)/"
                     r"backupProtectedItems/?$" % (ID, ID, ID), path, re.I)
        if m and meth == "GET":
            self.api_version(V_BACKUP)
            rsv_id = m.group(1)
            self.check_sub(c, m.group(2), "Microsoft.RecoveryServices/vaults/backupProtectedItems/read", rsv_id)
            if not w.has_rsv(rsv_id):
                raise arm_error(404, "ResourceNotFound", "The Resource 'Microsoft.RecoveryServices/vaults/%s' under "
                                "resource group '%s' was not found." % (m.group(4), m.group(3)))
            flt = self.q.get("$filter", "")
            want_bmt = re.search(r"backupManagementType eq '([^']*)'", flt, re.I)
            want_item = re.search(r"itemType eq '([^']*)'", flt, re.I)
            items = []
            for it in w.under_rsv("protectedItems", w.protected_items, rsv_id, by_vault_id=True):
                p = it.get("properties", {})
                if want_bmt and lc(p.get("backupManagementType")) != lc(want_bmt.group(1)):
                    continue
                if want_item and lc(p.get("workloadType")) != lc(want_item.group(1)):
                    continue
                items.append(it)   # not copied: nothing changes protected items (nor jobs, policies, events)
            return 200, self.page(items, encode=w.encoded), H
        m = re.match(r"^(/subscriptions/%s/resourceGroups/%s/providers/Microsoft\.RecoveryServices/vaults/%s)/"
                     r"(backupJobs|backupPolicies)/?$" % (ID, ID, ID), path, re.I)
        if m and meth == "GET":
            return self.backup_list(c, m) + (H,)
        m = re.match(r"^/subscriptions/%s/providers/Microsoft\.Insights/eventtypes/management/values/?$" % ID, path, re.I)
        if m and meth == "GET":
            self.api_version(V_INSIGHTS)
            sid = m.group(1)
            self.check_sub(c, sid, "Microsoft.Insights/eventtypes/values/read", path)
            return 200, self.page(self.activity_events(sid), encode=w.encoded), H
        raise arm_error(404, "NotFound", "The emulator serves no ARM request %s %s (see docs/azure-api.md)." % (
            meth, path))

    def vm_by_id(self, vm_id):
        """The scenario's VM with that ID (case-insensitive), through an index: benchmarks read 10,000s."""
        w = self.world
        with w.lock:
            idx = getattr(w, "vm_index", None)
            if idx is None or idx[0] is not w.vms or idx[1] != len(w.vms):
                idx = (w.vms, len(w.vms), {lc(v.get("id")): v for v in w.vms})
                w.vm_index = idx
        return idx[2].get(lc(vm_id))

    # ------------------------------------------------------------------ Resource Graph
    def graph_rows(self, c, subs, only_types=None):
        """The Resources table as Resource Graph shows it to the caller, for the subscriptions subs (and,
        when the query starts with `where type =~ 'T'`, only the rows of the types T: the result is the
        same)."""
        w = self.world

        def row(res, rtype):
            return graph_row(w, res, rtype, rtype not in ("microsoft.keyvault/vaults",
                                                          "microsoft.recoveryservices/vaults"))

        rows = []
        want = {lc(x) for x in subs}

        def of(t):
            return only_types is None or t in only_types

        def in_subs(name, items):
            return [x for x, sid in zip(items, w.subs_of(name, items)) if sid in want]
        # The world's lock only while the resources are picked: every other request waits on it, and
        # building 10,000s of rows takes a while (nothing a query reads changes during a scan).
        need = {"vms": of("microsoft.compute/virtualmachines") or of("microsoft.compute/virtualmachines/extensions"),
                "vmExtensions": of("microsoft.compute/virtualmachines/extensions"),
                "disks": of("microsoft.compute/disks"), "vaults": of("microsoft.keyvault/vaults"),
                "rsvs": of("microsoft.recoveryservices/vaults")}
        with w.lock:
            picked = {name: in_subs(name, lst) if need[name] else [] for name, lst in (
                ("vms", w.vms), ("vmExtensions", w.vm_extensions), ("disks", w.disks), ("vaults", w.vaults),
                ("rsvs", w.rsvs))}
        for vm in picked["vms"]:
            if not of("microsoft.compute/virtualmachines"):
                for ext in vm.get("resources") or []:
                    rows.append(row(ext, "microsoft.compute/virtualmachines/extensions"))
                continue
            rows.append(row(vm, "microsoft.compute/virtualmachines"))
            for ext in (vm.get("resources") or []) if of("microsoft.compute/virtualmachines/extensions") else []:
                rows.append(row(ext, "microsoft.compute/virtualmachines/extensions"))
        if of("microsoft.compute/virtualmachines/extensions"):
            seen = {lc(r["id"]) for r in rows}
            rows += [row(x, "microsoft.compute/virtualmachines/extensions")
                     for x in picked["vmExtensions"] if lc(x.get("id")) not in seen]
        for t, name in (("microsoft.compute/disks", "disks"), ("microsoft.keyvault/vaults", "vaults"),
                        ("microsoft.recoveryservices/vaults", "rsvs")):
            rows += [row(x, t) for x in picked[name]]
        if self.rule(c).get("deny"):
            rows = [r for r in rows if not self.denied(c, r["id"])]
        return rows

    def graph_quota(self, c):
        """Counts one query against the caller's quota; the quota headers, or 429 when it is spent."""
        w = self.world
        q = w.graph_quota
        now = time.time()
        with w.lock:
            win = w.graph_windows.setdefault(lc(c.get("oid")), [now, 0])
            if now - win[0] >= q["seconds"]:
                win[0], win[1] = now, 0
            left_s = max(0.0, q["seconds"] - (now - win[0]))
            spent = win[1] >= q["queries"]
            if not (spent and q["enforce"]):
                win[1] += 1
            remaining = max(0, q["queries"] - win[1])
        secs = int(left_s + 0.999)
        headers = {"x-ms-user-quota-remaining": str(remaining),
                   "x-ms-user-quota-resets-after": "%02d:%02d:%02d" % (secs // 3600, secs // 60 % 60, secs % 60)}
        if spent and q["enforce"]:
            headers["Retry-After"] = str(max(1, secs))
            raise HttpError(429, {"error": {"code": "RateLimiting", "message": (
                "Please provide below info when asking for support: timestamp = %s, correlationId = %s. "
                "Rate limit exceeded: the user quota of %d queries per %g seconds is spent." % (
                    iso_now(), self.req_id, q["queries"], q["seconds"]))}}, headers)
        return headers

    def resource_graph(self, c):
        """POST /providers/Microsoft.ResourceGraph/resources (QueryRequest -> QueryResponse, objectArray)."""
        w = self.world
        if self.rule(c).get("resourceGraph") is False:
            raise self.forbidden(c, "Microsoft.ResourceGraph/resources/read", "/")
        headers = self.graph_quota(c)
        req = self.json_body()
        if not isinstance(req, dict) or not isinstance(req.get("query"), str):
            raise arm_error(400, "BadRequest", "The request body must be a QueryRequest with a 'query' string.",
                            headers)
        subs = req.get("subscriptions") or []
        if not isinstance(subs, list) or not all(isinstance(x, str) for x in subs) or len(subs) > 1000:
            raise arm_error(400, "BadRequest", "'subscriptions' must be a list of at most 1000 subscription IDs.",
                            headers)
        opts = req.get("options") or {}
        if opts.get("resultFormat", "objectArray") != "objectArray":
            raise arm_error(400, "BadRequest", "The emulator serves resultFormat objectArray only.", headers)
        top = opts.get("$top", 1000)
        if not isinstance(top, int) or isinstance(top, bool) or not 1 <= top <= 1000:
            raise arm_error(400, "BadRequest", "options.$top must be an integer from 1 to 1000.", headers)
        try:
            ops = kql.parse(req["query"])
        except kql.KqlError as e:
            raise HttpError(400, kql.error_body(e, self.req_id, iso_now()), headers)
        asked = {lc(x) for x in subs}
        visible = [s for s in w.subscriptions if lc(s.get("subscriptionId")) in asked and self.sees_sub(c, s)]
        if not visible:
            raise HttpError(400, {"error": {"code": "BadRequest", "message": (
                "Please provide below info when asking for support: timestamp = %s, correlationId = %s." % (
                    iso_now(), self.req_id)), "details": [{"code": "NoValidSubscriptionsInQueryRequest",
                                                           "message": "There are no valid subscriptions in the "
                                                                      "query request."}]}}, headers)
        digest = hashlib.sha256(req["query"].encode()).hexdigest()[:16]
        offset = opts.get("$skip", 0) or 0
        tok = opts.get("$skipToken")
        if tok:
            try:
                d = json.loads(b64url_dec(tok))
                offset = int(d["o"])
                if d["q"] != digest:
                    raise ValueError("another query")
            except Exception:
                raise arm_error(400, "BadRequest", "The $skipToken is invalid for this query.", headers)
        # Later pages read the result the first page computed (a $skipToken pages one snapshot).
        ckey = (lc(c.get("oid")), digest, tuple(sorted(lc(s["subscriptionId"]) for s in visible)))
        with w.lock:
            data = w.graph_results.get(ckey) if tok else None
        if data is None:
            data = kql.run(ops, self.graph_rows(c, [s["subscriptionId"] for s in visible], kql.leading_types(ops)),
                           w.graph_list_max)
            with w.lock:
                if len(w.graph_results) > 64:
                    w.graph_results.clear()
                w.graph_results[ckey] = data
        size = min(top, w.graph_page)
        page = data[offset: offset + size]
        body = {"totalRecords": len(data), "count": len(page), "resultTruncated": "false", "facets": []}
        if offset + size < len(data):
            body["$skipToken"] = b64url(json.dumps({"o": offset + size, "q": digest}).encode())
        body["data"] = page
        return 200, body, headers

    def backup_list(self, c, m):
        """Jobs_List and ProtectionPolicies_List of a Recovery Services vault, with their $filter."""
        w = self.world
        self.api_version(V_BACKUP)
        rsv_id, what = m.group(1), m.group(5)
        self.check_sub(c, m.group(2), "Microsoft.RecoveryServices/vaults/%s/read" % what, rsv_id + "/" + what)
        if not w.has_rsv(rsv_id):
            raise arm_error(404, "ResourceNotFound", "The Resource 'Microsoft.RecoveryServices/vaults/%s' under "
                            "resource group '%s' was not found." % (m.group(4), m.group(3)))
        flt = self.q.get("$filter", "")
        # The answer of one filter is one list (jobs and policies never change): its pages slice it.
        key = (what.lower(), lc(rsv_id), flt)
        with w.lock:
            cache = w.__dict__.setdefault("backup_results", {})
            items = cache.get(key)
        if items is not None:   # the filter was checked when the list was made
            return 200, self.page(items, encode=w.encoded)
        conds = dict((lc(k), v) for k, v in re.findall(r"(\w+) eq '([^']*)'", flt))
        unknown = set(conds) - {"backupmanagementtype", "operation", "status", "starttime", "endtime"}
        if unknown or (what.lower() == "backuppolicies" and set(conds) - {"backupmanagementtype"}):
            raise arm_error(400, "BMSUserErrorInvalidFilter", "The filter '%s' is not supported." % flt)
        window = []
        for k in ("starttime", "endtime"):
            if k in conds:
                try:
                    window.append(datetime.datetime.strptime(conds[k], "%Y-%m-%d %I:%M:%S %p").replace(
                        tzinfo=datetime.timezone.utc).timestamp())
                except ValueError:
                    raise arm_error(400, "BMSUserErrorInvalidFilter", "The %s '%s' is not a time." % (k, conds[k]))
            else:
                window.append(None)
        items = []
        jobs = what.lower() == "backupjobs"
        want = [(n, lc(conds[k])) for n, k in enumerate(("backupmanagementtype", "operation", "status")) if k in conds]
        lo, hi = window
        for it in w.under_rsv(what.lower(), w.backup_jobs if jobs else w.backup_policies, rsv_id):
            f = w.backup_facts(it)
            if want and any(f[n] != v for n, v in want):
                continue
            t = f[3]
            if (lo is not None and (t is None or t < lo)) or (hi is not None and t is not None and t > hi):
                continue
            items.append(it)
        with w.lock:
            if len(cache) > 1024:
                cache.clear()
            cache[key] = items
        return 200, self.page(items, encode=w.encoded)

    def activity_events(self, sid):
        """The subscription's Activity Log events per the patterns its $filter accepts (eventTimestamp ge/le and
        one of resourceGroupName, resourceUri, resourceProvider, correlationId)."""
        w = self.world
        flt = self.q.get("$filter", "")
        ge = re.search(r"eventTimestamp ge '([^']*)'", flt, re.I)
        le = re.search(r"eventTimestamp le '([^']*)'", flt, re.I)
        if not ge or parse_time(ge.group(1)) is None:
            raise arm_error(400, "BadRequest", "The $filter must contain \"eventTimestamp ge '<start time>'\".")
        lo, hi = parse_time(ge.group(1)), parse_time(le.group(1)) if le else time.time()
        if hi is None:
            raise arm_error(400, "BadRequest", "The end time '%s' is not valid." % le.group(1))
        if time.time() - lo > 90 * 86400 + 3600:
            raise arm_error(400, "BadRequest", "The start time '%s' is more than 90 days in the past." % ge.group(1))
        conds = dict((lc(k), v) for k, v in re.findall(r"(resourceGroupName|resourceUri|resourceProvider|"
                                                       r"correlationId) eq '([^']*)'", flt, re.I))
        out = []
        for t, e in w.events_of(sid):
            if t is None or t < lo or t > hi:
                continue
            if "resourcegroupname" in conds and lc(e.get("resourceGroupName")) != lc(conds["resourcegroupname"]):
                continue
            if "resourceuri" in conds and lc(e.get("resourceId")) != lc(conds["resourceuri"]):
                continue
            if "resourceprovider" in conds and lc((e.get("resourceProviderName") or {}).get("value")) != lc(
                    conds["resourceprovider"]):
                continue
            if "correlationid" in conds and lc(e.get("correlationId")) != lc(conds["correlationid"]):
                continue
            out.append(e)
        return out

    def find_vault(self, vid, m):
        w = self.world
        with w.lock:
            for v in w.vaults:
                if lc(v.get("id")) == lc(vid.rstrip("/")):
                    return v
        raise arm_error(404, "ResourceNotFound", "The Resource 'Microsoft.KeyVault/vaults/%s' under resource group "
                        "'%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix" % (
                            m.group(m.lastindex), m.group(m.lastindex - 1)))

    def access_policies(self, c, m):
        w = self.world
        vid, op = m.group(1), lc(m.group(5))
        if op not in ("add", "replace", "remove"):
            raise arm_error(400, "BadRequest", "The operation kind '%s' is not valid; use add, replace or remove." % op)
        body = self.json_body()
        aps = body.get("properties", {}).get("accessPolicies") if isinstance(body, dict) and isinstance(
            body.get("properties"), dict) else None
        if not isinstance(aps, list):
            raise arm_error(400, "BadRequest", "The parameter properties.accessPolicies is required and must be an array.")
        for i, ap in enumerate(aps):
            if not isinstance(ap, dict):
                raise arm_error(400, "BadRequest", "accessPolicies[%d] must be an object." % i)
            for k in ("tenantId", "objectId", "permissions"):
                if not ap.get(k):
                    raise arm_error(400, "BadRequest", "The parameter accessPolicies[%d].%s is required." % (i, k))
            if not isinstance(ap["permissions"], dict) or not all(
                    isinstance(x, list) and all(isinstance(p, str) for p in x) for x in ap["permissions"].values()):
                raise arm_error(400, "BadRequest", "accessPolicies[%d].permissions must map categories to arrays of "
                                "strings." % i)

        def ident(e):
            return (lc(e.get("tenantId")), lc(e.get("objectId")), lc(e.get("applicationId") or ""))
        with w.lock:
            vault = self.find_vault(vid, m)
            props = vault.setdefault("properties", {})
            cur = props.setdefault("accessPolicies", [])
            result = []
            for ap in aps:
                existing = next((e for e in cur if ident(e) == ident(ap)), None)
                if op == "add":
                    if existing is None:
                        existing = copy.deepcopy(ap)
                        existing["permissions"] = {}
                        cur.append(existing)
                    perms = existing.setdefault("permissions", {})
                    for cat, vals in ap["permissions"].items():
                        lst = perms.setdefault(cat, [])
                        for p in vals:
                            if lc(p) not in [lc(x) for x in lst]:
                                lst.append(p)
                    result.append(copy.deepcopy(existing))
                elif op == "replace":
                    if existing is None:
                        existing = copy.deepcopy(ap)
                        cur.append(existing)
                    existing["permissions"] = copy.deepcopy(ap["permissions"])
                    result.append(copy.deepcopy(existing))
                else:   # remove: case-sensitive, a casing mismatch silently does nothing (AZURE-FACTS b4)
                    if existing is None:
                        continue
                    perms = existing.setdefault("permissions", {})
                    for cat, vals in ap["permissions"].items():
                        if cat in perms:
                            perms[cat] = [p for p in perms[cat] if p not in vals]
                    if not any(perms.get(k) for k in perms):
                        cur.remove(existing)
                    else:
                        result.append(copy.deepcopy(existing))
            sd = vault.setdefault("systemData", {})
            sd["lastModifiedBy"] = self.caller_name(c)
            sd["lastModifiedByType"] = "User" if c.get("idtyp") == "user" else "Application"
            sd["lastModifiedAt"] = iso_now()
        return 200, {"id": vault["id"] + "/accessPolicies/", "type": "Microsoft.KeyVault/vaults/accessPolicies",
                     "properties": {"accessPolicies": result}}

    def scope_check(self, c, scope, action, write=False):
        sid = sub_of(scope)
        if sid is None:
            raise arm_error(400, "InvalidScope", "The scope '%s' is not supported by the emulator." % scope)
        self.check_sub(c, sid, action, scope, write)

    def list_role_assignments(self, c, scope):
        w = self.world
        self.scope_check(c, scope, "Microsoft.Authorization/roleAssignments/read")
        flt = self.q.get("$filter")
        at_scope = assigned = principal = None
        if flt:
            for term in re.split(r"\s+and\s+", flt.strip(), flags=re.I):
                t = term.strip()
                if re.fullmatch(r"atScope\(\)", t, re.I):
                    at_scope = True
                elif re.fullmatch(r"assignedTo\('([^']*)'\)", t, re.I):
                    assigned = lc(re.fullmatch(r"assignedTo\('([^']*)'\)", t, re.I).group(1))
                elif re.fullmatch(r"principalId\s+eq\s+'([^']*)'", t, re.I):
                    principal = lc(re.fullmatch(r"principalId\s+eq\s+'([^']*)'", t, re.I).group(1))
                else:
                    raise arm_error(400, "UnsupportedQuery", "The filter '%s' is not supported." % flt)
        items = []
        with w.lock:
            for ra in w.role_assignments:
                p = ra.get("properties", {})
                rscope = p.get("scope") or ""
                if at_scope:
                    if not encloses(rscope, scope):
                        continue
                elif not (encloses(rscope, scope) or encloses(scope, rscope)):
                    continue
                if assigned and lc(p.get("principalId")) != assigned:
                    continue
                if principal and lc(p.get("principalId")) != principal:
                    continue
                items.append(copy.deepcopy(ra))
        return self.page(items)

    def role_definition_exists(self, rd_id):
        w = self.world
        guid = lc(rd_id.rstrip("/").rsplit("/", 1)[-1])
        if guid in BUILTIN_ROLES:
            return True
        return any(lc(d.get("name")) == guid or lc(d.get("id", "")).endswith("/" + guid) for d in w.role_definitions)

    def role_definition(self, sid, guid):
        w = self.world
        for d in w.role_definitions:
            if lc(d.get("name")) == guid or lc(d.get("id", "")).rstrip("/").endswith("/" + guid):
                if sub_of(d.get("id")) in (None, lc(sid)):
                    return copy.deepcopy(d)
        if guid in BUILTIN_ROLES:
            name, data_actions = BUILTIN_ROLES[guid]
            return {"id": "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s" % (sid, guid),
                    "name": guid, "type": "Microsoft.Authorization/roleDefinitions",
                    "properties": {"roleName": name, "type": "BuiltInRole", "description": name,
                                   "assignableScopes": ["/"],
                                   "permissions": [{"actions": [], "notActions": [], "dataActions": data_actions,
                                                    "notDataActions": []}],
                                   "createdOn": "2020-05-19T17:52:46.2349235Z", "updatedOn": "2024-01-22T00:00:00.0000000Z",
                                   "createdBy": None, "updatedBy": None}}
        raise arm_error(404, "RoleDefinitionDoesNotExist", "The specified role definition with ID '%s' does not "
                        "exist." % guid)

    def role_assignment(self, c, scope, name):
        w = self.world
        meth = self.command
        action = {"GET": "read", "PUT": "write", "DELETE": "delete"}[meth]
        self.scope_check(c, scope, "Microsoft.Authorization/roleAssignments/" + action, write=meth != "GET")
        rid = "%s/providers/Microsoft.Authorization/roleAssignments/%s" % (scope, name)
        with w.lock:
            cur = next((r for r in w.role_assignments if lc(r.get("id")) == lc(rid)), None)
            if meth == "GET":
                if cur is None:
                    raise arm_error(404, "RoleAssignmentNotFound", "The role assignment '%s' is not found." % name)
                return 200, copy.deepcopy(cur)
            if meth == "DELETE":
                if cur is None:
                    return 204, None
                w.role_assignments.remove(cur)
                return 200, copy.deepcopy(cur)
            try:
                uuid.UUID(name)
            except ValueError:
                raise arm_error(400, "InvalidRoleAssignmentId", "The role assignment ID '%s' is not valid. The role "
                                "assignment ID must be a GUID." % name)
            body = self.json_body()
            p = body.get("properties") if isinstance(body, dict) else None
            if not isinstance(p, dict) or not p.get("roleDefinitionId") or not p.get("principalId"):
                raise arm_error(400, "InvalidRequestContent", "properties.roleDefinitionId and properties.principalId "
                                "are required.")
            if not self.role_definition_exists(p["roleDefinitionId"]):
                raise arm_error(400, "RoleDefinitionDoesNotExist", "The specified role definition with ID '%s' does "
                                "not exist." % p["roleDefinitionId"].rsplit("/", 1)[-1])
            if lc(p["principalId"]) not in w.known_principals and not p.get("principalType"):
                raise arm_error(400, "PrincipalNotFound", "Principal %s does not exist in the directory %s. Check "
                                "that you have the correct principal ID. If you are creating this principal and then "
                                "immediately assigning a role, this error might be related to a replication delay. "
                                "In this case, set the role assignment principalType property to a value, such as "
                                "ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype" % (
                                    p["principalId"], c["tid"]))
            for r in w.role_assignments:
                rp = r.get("properties", {})
                if lc(r.get("id")) != lc(rid) and lc(rp.get("scope")) == lc(scope) and \
                        lc(rp.get("principalId")) == lc(p["principalId"]) and \
                        lc(rp.get("roleDefinitionId", "")).rsplit("/", 1)[-1] == lc(p["roleDefinitionId"]).rsplit("/", 1)[-1]:
                    raise arm_error(409, "RoleAssignmentExists", "The role assignment already exists.")
            if cur is not None:
                cp = cur.get("properties", {})
                if lc(cp.get("principalId")) != lc(p["principalId"]) or \
                        lc(cp.get("roleDefinitionId")) != lc(p["roleDefinitionId"]):
                    raise arm_error(409, "RoleAssignmentUpdateNotPermitted", "Tenant ID, application ID, principal ID, "
                                    "and scope are not allowed to be updated.")
                return 201, copy.deepcopy(cur)
            now = iso_now()
            ra = {"id": rid, "name": name, "type": "Microsoft.Authorization/roleAssignments",
                  "properties": {"roleDefinitionId": p["roleDefinitionId"], "principalId": p["principalId"],
                                 "principalType": p.get("principalType") or self.principal_type(c["tid"], p["principalId"]),
                                 "scope": scope, "condition": p.get("condition"),
                                 "conditionVersion": p.get("conditionVersion"), "createdOn": now, "updatedOn": now,
                                 "createdBy": c.get("oid"), "updatedBy": c.get("oid"),
                                 "delegatedManagedIdentityResourceId": None, "description": p.get("description")}}
            w.role_assignments.append(ra)
            w.known_principals.add(lc(p["principalId"]))
            return 201, copy.deepcopy(ra)

    def principal_type(self, tid, oid):
        p = self.world.principal(tid, oid)
        if p is None:
            return "ServicePrincipal"
        return {"user": "User"}.get(p[0], "ServicePrincipal")

    # ------------------------------------------------------------------ Microsoft Graph
    def graph(self):
        w = self.world
        c = self.bearer("graph")
        path = self.path_only[len("/graph"):]
        tenant = w.tenants[lc(c["tid"])]
        sel = [s.strip() for s in self.q.get("$select", "").split(",") if s.strip()]
        ctx = w.base + "/graph/v1.0/$metadata#"
        if self.command != "GET":
            raise self.graph_error(405, "Request_BadRequest", "Only GET is emulated.")
        if re.fullmatch(r"/v1\.0/me/?", path, re.I):
            if c.get("idtyp") != "user":
                raise self.graph_error(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
            p = w.principal(c["tid"], c["oid"])
            if p is None:
                raise self.graph_error(404, "Request_ResourceNotFound", "Resource '%s' does not exist or one of its "
                                       "queried reference-property objects are not present." % c["oid"])
            u = p[2]
            full = {"id": lc(u["objectId"]), "userPrincipalName": u.get("userPrincipalName"),
                    "displayName": u.get("displayName"), "userType": u.get("userType"),
                    "mail": u.get("mail") or u["signInName"], "givenName": u.get("givenName"),
                    "surname": u.get("surname"), "jobTitle": u.get("jobTitle"), "businessPhones": [],
                    "mobilePhone": None, "officeLocation": None, "preferredLanguage": None}
            default = ["businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
                       "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id"]
            return 200, self.graph_select(full, sel, default, ctx + "users", True), {}
        m = re.fullmatch(r"/v1\.0/servicePrincipals\(appId='([^']*)'\)/?", path, re.I)
        if m:
            self.graph_permission(c)
            sp = w.sp_in(tenant, m.group(1))
            if sp is None:
                raise self.graph_error(404, "Request_ResourceNotFound", "Resource '%s' does not exist or one of its "
                                       "queried reference-property objects are not present." % m.group(1))
            return 200, self.graph_select(self.sp_object(sp), sel, None, ctx + "servicePrincipals", True), {}
        if re.fullmatch(r"/v1\.0/servicePrincipals/?", path, re.I):
            self.graph_permission(c)
            flt = self.q.get("$filter", "")
            fm = re.fullmatch(r"\s*appId\s+eq\s+'([^']*)'\s*", flt, re.I)
            if not fm:
                raise self.graph_error(400, "Request_UnsupportedQuery", "Unsupported query.")
            sps = [sp for sp in tenant["servicePrincipals"] if lc(sp.get("appId")) == lc(fm.group(1))]
            return 200, {"@odata.context": ctx + "servicePrincipals" + ("(%s)" % ",".join(sel) if sel else ""),
                         "value": [self.graph_select(self.sp_object(sp), sel, None, None, False) for sp in sps]}, {}
        m = re.fullmatch(r"/v1\.0/users/([^/]+)/?", path, re.I)
        if m:
            self.graph_permission(c)
            u = next((x for x in tenant["users"] if lc(x["objectId"]) == lc(m.group(1))), None)
            if u is None:
                raise self.graph_error(404, "Request_ResourceNotFound", "Resource '%s' does not exist or one of its "
                                       "queried reference-property objects are not present." % m.group(1))
            full = {"id": lc(u["objectId"]), "userPrincipalName": u.get("userPrincipalName"),
                    "displayName": u.get("displayName"), "userType": u.get("userType"),
                    "mail": u.get("mail") or u["signInName"], "givenName": u.get("givenName"),
                    "surname": u.get("surname"), "jobTitle": u.get("jobTitle"), "businessPhones": [],
                    "mobilePhone": None, "officeLocation": None, "preferredLanguage": None}
            default = ["businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
                       "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id"]
            return 200, self.graph_select(full, sel, default, ctx + "users", True), {}
        if re.fullmatch(r"/v1\.0/organization/?", path, re.I):
            return 200, {"@odata.context": ctx + "organization",
                         "value": [{"id": tenant["tenantId"], "displayName": tenant["displayName"],
                                    "verifiedDomains": [{"name": tenant["defaultDomain"], "isDefault": True,
                                                         "isInitial": True, "type": "Managed"}]}]}, {}
        raise self.graph_error(400, "BadRequest", "Resource not found for the segment '%s'." % path.strip("/").split("/")[-1])

    def graph_permission(self, c):
        if self.rule(c).get("graph") is False:
            raise self.graph_error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")

    def sp_object(self, sp):
        bms = lc(sp.get("appId")) == BMS_APP_ID
        return {"id": lc(sp["objectId"]), "appId": lc(sp.get("appId")),
                "displayName": sp.get("displayName") or ("Backup Management Service" if bms else sp.get("appId")),
                "accountEnabled": True, "servicePrincipalType": "Application",
                "appOwnerOrganizationId": MS_TENANT if bms else sp.get("appOwnerOrganizationId"),
                "servicePrincipalNames": [lc(sp.get("appId"))]}

    def graph_select(self, full, sel, default, ctx, entity):
        keys = sel or default or list(full.keys())
        out = {}
        if ctx:
            out["@odata.context"] = ctx + ("(%s)" % ",".join(sel) if sel else "") + ("/$entity" if entity else "")
        for k in keys:
            hit = next((fk for fk in full if lc(fk) == lc(k)), None)
            out[hit or k] = full.get(hit) if hit else None
        return out

    def graph_error(self, status, code, message):
        return HttpError(status, {"error": {"code": code, "message": message,
                                            "innerError": {"date": iso_now()[:19], "request-id": self.req_id,
                                                           "client-request-id": self.req_id}}})

    # ------------------------------------------------------------------ Key Vault data plane
    def kv_vault(self, required=True):
        w = self.world
        name = lc(self.headers.get("Host", "")).split(":")[0].split(".")[0]
        with w.lock:
            for v in w.vaults:
                if lc(v.get("name")) == name:
                    return v
        if required:
            raise HttpError(404, {"error": {"code": "VaultNotFound", "message": "The vault '%s' does not exist in "
                                            "the emulator's scenario." % name}})
        return None

    def keyvault(self):
        w = self.world
        v = self.q.get("api-version")
        vault = self.kv_vault()
        if v not in V_KVDATA:
            raise HttpError(400, {"error": {"code": "BadParameter", "message": (
                "The specified version (%s) is not recognized. Consider using the latest supported version (%s)." % (
                    v, V_KVDATA[-1])) if v else "api-version query parameter is required."}})
        c = self.bearer("keyvault")
        vtid = lc(vault["properties"].get("tenantId"))
        if lc(c["tid"]) != vtid:
            raise HttpError(401, {"error": {"code": "Unauthorized", "message": (
                "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/%s/, "
                "https://login.microsoftonline.com/%s/v2.0, found https://sts.windows.net/%s/." % (vtid, vtid, c["tid"]))}},
                {"WWW-Authenticate": 'Bearer authorization="%s/login/%s", resource="%s"' % (w.base, vtid, KV_AUDIENCE)})
        if self.command == "GET" and re.fullmatch(r"/secrets/[^/]+/versions/?", self.path_only, re.I):
            return self.kv_secret_versions(c, vault)
        if self.command == "GET" and re.fullmatch(r"/deletedsecrets/?", self.path_only, re.I):
            return self.kv_deleted_secrets(c, vault)
        if self.command == "GET" and re.fullmatch(r"/deletedkeys/[^/]+/?", self.path_only, re.I):
            return self.kv_deleted_key(c, vault)
        m = re.fullmatch(r"/keys/([^/]+)(?:/([^/]*))?/?", self.path_only, re.I)
        if not m or self.command != "GET":
            # Get Secret and Get Deleted Secret return a secret's value: never served (tests assert
            # kvaudit never asks).
            raise HttpError(400 if self.command == "GET" else 405, {"error": {"code": "BadParameter", "message": (
                "The emulator serves only GET /keys/{name}/{version}, /deletedkeys/{name}, "
                "/secrets/{name}/versions and /deletedsecrets.")}})
        self.kv_authorize(c, vault)
        name, version = lc(m.group(1)), lc(m.group(2) or "")
        best = None
        for k in w.keys:
            kid = (k.get("key") or {}).get("kid", "")
            km = re.match(r"^https://([^./]+)\.[^/]+/keys/([^/]+)/([^/?]+)", kid, re.I)
            if not km or lc(km.group(1)) != lc(vault["name"]) or lc(km.group(2)) != name:
                continue
            if version and lc(km.group(3)) != version:
                continue
            if best is None or (k.get("attributes") or {}).get("created", 0) > (best.get("attributes") or {}).get("created", 0):
                best = k
        if best is None:
            raise HttpError(404, {"error": {"code": "KeyNotFound", "message": (
                "A key with (name/id) %s (version %s) was not found in this key vault. If you recently deleted this "
                "key you may be able to recover it using the correct recovery command. For help resolving this issue, "
                "please see https://go.microsoft.com/fwlink/?linkid=2125182" % (m.group(1), m.group(2) or ""))}})
        return 200, copy.deepcopy(best), self.kv_headers(vault)

    def kv_headers(self, vault):
        return {"x-ms-keyvault-service-version": "1.9.2000.1",
                "x-ms-keyvault-region": vault.get("location", "westeurope"),
                "x-ms-keyvault-network-info": "conn_type=Ipv4;addr=127.0.0.1;act_addr_fam=InterNetwork;"}

    @staticmethod
    def kv_ref(url, kind):
        """(vault name, object name, version) of a Key Vault object URL, lower case, or None."""
        m = re.match(r"^https://([^./]+)\.[^/]+/%s/([^/?]+)(?:/([^/?]+))?" % kind, url or "", re.I)
        return (lc(m.group(1)), lc(m.group(2)), lc(m.group(3) or "")) if m else None

    def kv_page(self, items, vault):
        """One page of a data-plane list: {"value", "nextLink"} on the vault's own host (with :443 as
        Key Vault writes it when the emulator listens on 443), maxresults honoured (1-25)."""
        w = self.world
        with w.lock:
            size = max(1, int(w.cfg["pageSize"]))
        try:
            mr = int(self.q.get("maxresults") or 25)
        except ValueError:
            raise HttpError(400, {"error": {"code": "BadParameter", "message": "Invalid maxresults."}})
        if mr < 1 or mr > 25:
            raise HttpError(400, {"error": {"code": "BadParameter", "message": (
                "The value of maxresults must be between 1 and 25.")}})
        size = min(size, mr)
        tok = self.q.get("$skiptoken")
        offset = 0
        if tok:
            try:
                offset = int(json.loads(b64url_dec(tok))["o"])
            except Exception:
                raise HttpError(400, {"error": {"code": "BadParameter", "message": "Invalid skip token."}})
        body = {"value": items[offset: offset + size], "nextLink": None}
        if offset + size < len(items):
            params = [(k, v) for k, v in urllib.parse.parse_qsl(self.raw_query, keep_blank_values=True)
                      if k.lower() != "$skiptoken"]
            params.append(("$skiptoken", b64url(json.dumps({"o": offset + size}).encode())))
            body["nextLink"] = "https://%s%s?%s" % (self.headers.get("Host"), self.path_only,
                                                   urllib.parse.urlencode(params, quote_via=urllib.parse.quote,
                                                                          safe="$'(),"))
        return 200, body, self.kv_headers(vault)

    def kv_secret_versions(self, c, vault):
        """Get Secret Versions: SecretItems (id, attributes, tags, contentType; never a value)."""
        self.kv_authorize(c, vault, "secrets", "list")
        name = lc(self.path_only.strip("/").split("/")[1])
        with self.world.lock:
            items = [copy.deepcopy(s) for s in self.world.secrets
                     if (self.kv_ref(s.get("id"), "secrets") or ("", "", ""))[:2] == (lc(vault["name"]), name)]
        if not items:
            raise HttpError(404, {"error": {"code": "SecretNotFound", "message": (
                "A secret with (name/id) %s was not found in this key vault. If you recently deleted this secret "
                "you may be able to recover it using the correct recovery command. For help resolving this issue, "
                "please see https://go.microsoft.com/fwlink/?linkid=2125182" % self.path_only.strip("/").split("/")[1])}})
        for s in items:
            s.pop("value", None)
        return self.kv_page(items, vault)

    def kv_deleted_secrets(self, c, vault):
        """Get Deleted Secrets: DeletedSecretItems (recoveryId, scheduledPurgeDate, deletedDate; no value)."""
        self.kv_authorize(c, vault, "secrets", "list")
        with self.world.lock:
            items = [copy.deepcopy(s) for s in self.world.deleted_secrets
                     if (self.kv_ref(s.get("id"), "secrets") or ("",))[0] == lc(vault["name"])]
        for s in items:
            s.pop("value", None)
        return self.kv_page(items, vault)

    def kv_deleted_key(self, c, vault):
        """Get Deleted Key: a DeletedKeyBundle (public key material only)."""
        self.kv_authorize(c, vault, "keys", "get")
        name = lc(self.path_only.strip("/").split("/")[1])
        with self.world.lock:
            hit = next((copy.deepcopy(k) for k in self.world.deleted_keys
                        if (self.kv_ref((k.get("key") or {}).get("kid"), "keys") or ("", ""))[:2] ==
                        (lc(vault["name"]), name)), None)
        if hit is None:
            raise HttpError(404, {"error": {"code": "KeyNotFound", "message": (
                "Deleted Key not found: %s" % self.path_only.strip("/").split("/")[1])}})
        return 200, hit, self.kv_headers(vault)

    def kv_authorize(self, c, vault, kind="keys", perm="get"):
        w = self.world
        with w.lock:
            dp = copy.deepcopy(w.cfg["dataPlane"] or {})
            ras = copy.deepcopy(w.role_assignments)
        caller = "appid=%s;oid=%s;iss=https://sts.windows.net/%s/" % (c.get("appid"), c.get("oid"), c.get("tid"))
        where = "%s;location=%s" % (vault["name"], vault.get("location"))
        # dataPlane.firewall: vault names whose firewall refuses the emulator's clients (127.0.0.1).
        if lc(vault["name"]) in [lc(x) for x in dp.get("firewall") or []]:
            raise HttpError(403, {"error": {"code": "Forbidden", "message": (
                "Client address is not authorized and caller is not a trusted service.\r\nClient address: "
                "127.0.0.1\r\nCaller: %s\r\nVault: %s" % (caller, where)),
                "innererror": {"code": "ForbiddenByFirewall"}}})
        rbac = vault["properties"].get("enableRbacAuthorization") is True
        deny = [d for d in dp.get("deny") or []
                if (d.get("vault") in ("*", None) or lc(d.get("vault")) == lc(vault["name"])) and
                (d.get("objectId") in ("*", None) or lc(d.get("objectId")) == lc(c.get("oid")))]
        denied = bool(deny)
        if any(d.get("innererror") == "ForbiddenByPolicy" for d in deny):
            # Azure Policy / network security perimeter refusing the request.
            raise HttpError(403, {"error": {"code": "Forbidden", "message": (
                "Operation is not allowed by policy on key vault '%s'. Caller: %s" % (where, caller)),
                "innererror": {"code": "ForbiddenByPolicy"}}})
        if self.rule(c).get("dataPlane") is False:
            denied = True
        if not denied and dp.get("mode") == "policy":
            if rbac:
                denied = not any(lc(r["properties"].get("principalId")) == lc(c.get("oid")) and
                                 encloses(r["properties"].get("scope"), vault["id"]) and
                                 self.role_reads_keys(r["properties"].get("roleDefinitionId", ""), kind) for r in ras)
            else:
                denied = True
                for ap in vault["properties"].get("accessPolicies") or []:
                    if lc(ap.get("objectId")) == lc(c.get("oid")) and lc(ap.get("tenantId")) == lc(c.get("tid")) and \
                            not ap.get("applicationId"):
                        granted = [lc(p) for p in (ap.get("permissions") or {}).get(kind) or []]
                        if perm in granted or "all" in granted:
                            denied = False
        if not denied:
            return
        action = ("Microsoft.KeyVault/vaults/keys/read" if kind == "keys" else
                  "Microsoft.KeyVault/vaults/secrets/readMetadata/action")
        if rbac:
            raise HttpError(403, {"error": {"code": "Forbidden", "message": (
                "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or "
                "role definitions were changed recently, please observe propagation time.\r\nCaller: %s\r\nAction: "
                "'%s'\r\nResource: '%s/%s'\r\nAssignment: (not found)\r\n"
                "DenyAssignmentId: null\r\nDecisionReason: null \r\nVault: %s\r\n" % (
                    caller, action, lc(vault["id"]), kind, where)),
                "innererror": {"code": "ForbiddenByRbac"}}})
        raise HttpError(403, {"error": {"code": "Forbidden", "message": (
            "The user, group or application '%s' does not have %s %s permission on key vault '%s'. For help "
            "resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287" % (caller, kind, perm, where)),
            "innererror": {"code": "AccessDenied"}}})

    def role_reads_keys(self, rd_id, kind="keys"):
        w = self.world
        guid = lc(rd_id.rstrip("/").rsplit("/", 1)[-1])
        actions = []
        for d in w.role_definitions:
            if lc(d.get("name")) == guid:
                for perm in d.get("properties", {}).get("permissions") or []:
                    actions += perm.get("dataActions") or []
        if not actions and guid in BUILTIN_ROLES:
            actions = BUILTIN_ROLES[guid][1]
        want = ("microsoft.keyvault/vaults/keys/read" if kind == "keys" else
                "microsoft.keyvault/vaults/secrets/readmetadata/action")
        for a in actions:
            rx = "^" + re.escape(lc(a)).replace(r"\*", "[^/]*(/.*)?" if lc(a).endswith("*") else "[^/]*") + "$"
            if re.match(rx, want):
                return True
        return False


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, world, ssl_ctx, kind, verbose, stopper):
        self.world = world
        self.ssl_ctx = ssl_ctx
        self.kind = kind
        self.verbose = verbose
        self.stop_all = stopper
        super().__init__(addr, Handler, bind_and_activate=True)

    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = self.server_address[1]

    profiles = None   # --profile: one cProfile.Profile per connection's thread, summed at exit

    def finish_request(self, request, client_address):
        if self.profiles is None:
            return self.serve_connection(request, client_address)
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
        try:
            self.serve_connection(request, client_address)
        finally:
            prof.disable()
            with self.world.lock:
                self.profiles.append(prof)

    def serve_connection(self, request, client_address):
        # The TLS handshake runs here, in the connection's own thread, so a silent client cannot block accept().
        request.settimeout(30)
        if self.ssl_ctx is not None:
            try:
                request = self.ssl_ctx.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        try:
            self.RequestHandlerClass(request, client_address, self)
        finally:
            try:
                request.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        if self.verbose:
            super().handle_error(request, client_address)


# ------------------------------------------------------------------------------------------ main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--overlay", action="append", default=[])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--http-port", type=int, default=0, help="plain-HTTP IMDS/App Service listener (0 = any)")
    ap.add_argument("--max-seconds", type=float, default=900)
    ap.add_argument("--kv-urls", choices=("port", "noport", "azure"), default=None,
                    help="rewrite https://<v>.vault.azure.net in the scenario to <v>.vault.emulator.test:PORT "
                         "(port, default), <v>.vault.emulator.test (noport) or leave it (azure)")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--profile", metavar="FILE",
                    help="profile loading and every connection's thread with cProfile; write the sum to FILE "
                         "(pstats: python3 -m pstats FILE) when the emulator stops")
    a = ap.parse_args(argv)
    profiles = None
    if a.profile:
        import cProfile
        profiles = [cProfile.Profile()]
        profiles[0].enable()

    workdir = os.path.abspath(a.workdir)
    os.makedirs(workdir, exist_ok=True)
    for stale in ("ready", "stopped"):
        try:
            os.unlink(os.path.join(workdir, stale))
        except FileNotFoundError:
            pass
    # The scenario's millions of objects live until exit: no garbage collection while they are made,
    # and none of them scanned by the collections after (gc.freeze below).
    gc.disable()
    try:
        doc = load_scenario(a.scenario, a.overlay)
    except (OSError, ValueError) as e:
        sys.stderr.write("emulator: cannot load scenario: %s\n" % e)
        return 2
    emu = doc.get("emulator") or {}
    kv_urls = a.kv_urls or emu.get("keyVaultUrls", "noport")

    # bind first: the port goes into the scenario's Key Vault URLs and the certificate
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", a.port))
    port = lsock.getsockname()[1]
    lsock.close()

    world = World(doc, port, kv_urls, workdir)
    del doc
    world.index_graph_rows()
    world.index_answers()
    gc.freeze()
    gc.enable()
    make_pki(workdir, [v.get("name", "") for v in world.vaults])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(os.path.join(workdir, "server.pem"), os.path.join(workdir, "server.key"))

    stop = threading.Event()
    servers = []

    def stop_all():
        stop.set()

    servers.append(Server(("127.0.0.1", port), world, ctx, "https", a.verbose, stop_all))
    servers.append(Server(("127.0.0.1", a.http_port), world, None, "http", a.verbose, stop_all))
    for s in servers:
        s.profiles = profiles
    http_port = servers[1].server_address[1]
    for s in servers:
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()

    base = world.base
    cloud = {
        "name": "Emulator", "isActive": False, "profile": "latest",
        "endpoints": {
            "activeDirectory": base + "/login",
            "activeDirectoryResourceId": "https://management.core.windows.net/",
            "activeDirectoryGraphResourceId": "https://graph.windows.net/",
            "management": "https://management.core.windows.net/",
            "resourceManager": base + "/arm/",
            "microsoftGraphResourceId": base + "/graph/",
            "logAnalyticsResourceId": "https://api.loganalytics.io",
        },
        "suffixes": {"keyvaultDns": "." + KV_SUFFIX, "storageEndpoint": "core.windows.net",
                     "azureDatalakeStoreFileSystemEndpoint": "azuredatalakestore.net"},
        "caBundle": os.path.join(workdir, "ca.pem"),
    }
    if emu.get("backupAppId", BMS_APP_ID):   # kvaudit's own field; "backupAppId": null leaves it out
        cloud["backupAppId"] = emu.get("backupAppId", BMS_APP_ID)
    write_file(os.path.join(workdir, "cloud.json"), json.dumps(cloud, indent=2) + "\n")
    kv_hosts = sorted({lc(v.get("name")) + "." + KV_SUFFIX for v in world.vaults if v.get("name")})
    # Key Vault URLs without a port (noport, as in Azure) are reached with CURLOPT_CONNECT_TO entries,
    # URLs with the port (port) with CURLOPT_RESOLVE entries.
    resolve = ",".join("%s:%d:127.0.0.1" % (h, port) for h in kv_hosts)
    connect_to = ",".join("%s:443:127.0.0.1:%d" % (h, port) for h in kv_hosts)
    write_file(os.path.join(workdir, "resolve.txt"), resolve + "\n")
    write_file(os.path.join(workdir, "connect-to.txt"), connect_to + "\n")

    apps = list(world.apps.values())
    default_app = next((x for x in apps if lc(x["clientId"]) == lc(emu.get("defaultApp"))), None) or \
        next((x for x in apps if x.get("secret")), None)
    mi = world.mis[0] if world.mis else None
    users = []
    for t in world.tenants.values():
        for u in t["users"]:
            users.append({"tenantId": t["tenantId"], "objectId": lc(u["objectId"]), "signInName": u["signInName"],
                          "userPrincipalName": u.get("userPrincipalName"), "userType": u.get("userType"),
                          "homeTenantId": u["homeTenantId"]})
    info = {
        "pid": os.getpid(), "port": port, "httpPort": http_port, "base": base,
        "arm": base + "/arm", "login": base + "/login", "graph": base + "/graph",
        "imds": "http://127.0.0.1:%d" % http_port, "imdsHttps": base,
        "identityEndpoint": "http://127.0.0.1:%d/msi/token" % http_port,
        "identityHeader": mi["identityHeader"] if mi else None,
        "keyVaultSuffix": KV_SUFFIX, "keyVaultAudience": KV_AUDIENCE, "keyVaultUrls": kv_urls,
        "keyVaultHosts": kv_hosts, "resolve": resolve, "connectTo": connect_to,
        "caBundle": os.path.join(workdir, "ca.pem"),
        "cloudFile": os.path.join(workdir, "cloud.json"),
        "tenants": [{"tenantId": t["tenantId"], "displayName": t["displayName"], "defaultDomain": t["defaultDomain"],
                     "subscriptions": [lc(s["subscriptionId"]) for s in world.subscriptions
                                       if lc(s.get("tenantId")) == t["tenantId"]]} for t in world.tenants.values()],
        "users": users,
        "apps": [{"clientId": x["clientId"], "tenantId": x["tenantId"], "secret": x.get("secret"),
                  "certificatePath": x.get("certificatePath"), "federatedTokenPath": x.get("federatedTokenPath"),
                  "servicePrincipals": {t["tenantId"]: lc(world.sp_in(t, x["clientId"])["objectId"])
                                        for t in world.tenants.values() if world.sp_in(t, x["clientId"])}}
                 for x in apps],
        "managedIdentities": [{"clientId": m["clientId"], "objectId": m["objectId"], "tenantId": m["tenantId"]}
                              for m in world.mis],
        "defaultApp": default_app["clientId"] if default_app else None,
        "passwords": {k: v for k, v in world.passwords.items()},
    }
    write_file(os.path.join(workdir, "emulator.json"), json.dumps(info, indent=2) + "\n", mode=0o600)

    def q(s):
        return "'" + str(s).replace("'", "'\\''") + "'"
    env = ["# Generated by tests/emulator/emulator.py: source it, then run kvaudit --cloud %s" % q(cloud["caBundle"][:-6] + "cloud.json")]
    if default_app:
        env += ["export AZURE_TENANT_ID=%s" % q(default_app["tenantId"]),
                "export AZURE_CLIENT_ID=%s" % q(default_app["clientId"]),
                "export AZURE_CLIENT_SECRET=%s" % q(default_app["secret"])]
    if kv_urls == "port":
        env += ["export KVAUDIT_RESOLVE=%s" % q(resolve)]
    else:
        env += ["export KVAUDIT_CONNECT_TO=%s" % q(connect_to)]
    env += [
            "export KVAUDIT_EMULATOR_CLOUD=%s" % q(os.path.join(workdir, "cloud.json")),
            "export KVAUDIT_EMULATOR_URL=%s" % q(base),
            "export KVAUDIT_FAKE_AZ_WORKDIR=%s" % q(workdir),
            "# managed identity: unset AZURE_CLIENT_ID and use --auth msi with",
            "#   KVAUDIT_IMDS_ENDPOINT=http://127.0.0.1:%d   (IMDS)" % http_port]
    if mi:
        env += ["#   or IDENTITY_ENDPOINT=%s IDENTITY_HEADER=%s   (App Service)" % (
            info["identityEndpoint"], mi["identityHeader"])]
    write_file(os.path.join(workdir, "env.sh"), "\n".join(env) + "\n", mode=0o600)
    here = os.path.dirname(os.path.abspath(__file__))
    os.makedirs(os.path.join(workdir, "bin"), exist_ok=True)
    write_file(os.path.join(workdir, "bin", "az"),
               "#!/bin/sh\n: \"${KVAUDIT_FAKE_AZ_WORKDIR:=%s}\"\nexport KVAUDIT_FAKE_AZ_WORKDIR\nexec %s %s \"$@\"\n" % (
                   workdir, q(sys.executable), q(os.path.join(here, "fake-az"))), mode=0o755)
    write_file(os.path.join(workdir, "ready"), "%d\n" % port)
    sys.stderr.write("emulator: listening on %s (http %d), workdir %s\n" % (base, http_port, workdir))
    sys.stderr.flush()

    deadline = time.time() + a.max_seconds
    try:
        while not stop.is_set() and time.time() < deadline:
            stop.wait(0.2)
    except KeyboardInterrupt:
        pass
    for s in servers:
        s.shutdown()
        s.server_close()
    if profiles:
        import pstats
        profiles[0].disable()
        with world.lock:
            st = pstats.Stats(*profiles)
        st.dump_stats(a.profile)
    write_file(os.path.join(workdir, "stopped"), "timeout\n" if not stop.is_set() else "shutdown\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
