#!/usr/bin/env python3
"""Regenerates the committed seed corpora under tests/fuzz/corpus/<target>/.

Seeds come from the Azure fixtures (tests/fixtures/azure/, HTTP bodies
extracted from the spec examples' responses.<status>.body), the examples/
estates, the built-in rule catalog, the unit-test data, and a few
hand-written hostile strings.  Run from anywhere; it rewrites the corpus
directories (fuzzer-found inputs that are worth keeping go to
tests/fuzz/regressions/ instead).
"""
import base64
import glob
import hashlib
import json
import os
import shutil

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")
FIX = os.path.join(ROOT, "tests", "fixtures", "azure")


def put(target, data, name=None):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    name = name or hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def bodies():
    """(fixture name, status, body bytes) of every response body in the fixtures."""
    for path in sorted(glob.glob(os.path.join(FIX, "*.json"))):
        name = os.path.basename(path)[:-5]
        doc = json.loads(read(path))
        if isinstance(doc, dict) and isinstance(doc.get("responses"), dict):
            for status, resp in doc["responses"].items():
                if isinstance(resp, dict) and "body" in resp:
                    yield name, int(status), json.dumps(resp["body"]).encode()
        else:
            yield name, 200, read(path)


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def main():
    shutil.rmtree(OUT, ignore_errors=True)

    # fuzz_estate: whole snapshots.
    for p in ["examples/demo-estate.json", "examples/partial-estate.json",
              "tests/unit/data/estate/full.json", "tests/unit/data/estate/empty-lists.json",
              "tests/unit/data/ade/rich.estate.json"]:
        put("fuzz_estate", read(os.path.join(ROOT, p)), os.path.basename(p))
    put("fuzz_estate", '{"kind":"kvaudit.estate","version":1}', "minimal.json")

    # fuzz_rule: the catalog, the engine's test rules, and rules carrying their own "$facts".
    for p in sorted(glob.glob(os.path.join(ROOT, "rules", "catalog", "*.json"))):
        put("fuzz_rule", read(p), os.path.basename(p))
    for p in sorted(glob.glob(os.path.join(ROOT, "tests", "unit", "data", "engine", "*", "*.json"))):
        put("fuzz_rule", read(p), "engine-" + os.path.basename(os.path.dirname(p)) + "-" + os.path.basename(p))
    put("fuzz_rule", json.dumps({
        "id": "KVA-FUZZ-001", "title": "regex", "severity": "high", "subject": "vault",
        "when": {"fact": "vault.name", "regex": "^(a+)+$"},
        "require": {"any": [{"fact": "vault.rbac", "eq": True},
                            {"not": {"fact": "vault.name", "in": ["x", "y"]}}]},
        "message": "{{vault.name}} {{missing}} {{nope}}",
        "$facts": {"vault": {"name": "aaaa", "rbac": False},
                   "$unavailable": {"vault.rbac": {"status": "error", "reason": "403"}}}}), "regex-facts.json")

    # fuzz_parse: first byte selects the parser (0 arm, 1 rg, 2 error, 3 token, 4 retry-after, 5 ratelimit).
    for name, status, body in bodies():
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and "value" in doc:
            put("fuzz_parse", b"\x00" + body, "arm-" + name)
        if isinstance(doc, dict) and "data" in doc:
            put("fuzz_parse", b"\x01" + body, "rg-" + name)
        if status >= 400 or (isinstance(doc, dict) and "error" in doc):
            put("fuzz_parse", b"\x02" + bytes([(status - 100) // 2 % 256]) + body, "error-%d-%s" % (status, name))
        if isinstance(doc, dict) and ("access_token" in doc or "accessToken" in doc):
            put("fuzz_parse", b"\x03" + body, "token-" + name)
    for p in sorted(glob.glob(os.path.join(ROOT, "tests", "unit", "data", "auth", "*.json"))):
        put("fuzz_parse", b"\x02\xc8" + read(p), "error-" + os.path.basename(p))
    put("fuzz_parse", b'\x02\xc8{"code":"InvalidParameter","message":"x","details":[{"code":"c","message":"{\\"error\\":{\\"code\\":\\"Inner\\",\\"message\\":\\"m\\"}}"}]}', "error-compute-nested")
    put("fuzz_parse", b'\x02\xb8<html><body>\x1b[31mGateway\x07</body></html>', "error-html")
    put("fuzz_parse", b'\x03{"accessToken":"eyJ0.eyJ1.sig","expiresOn":"2026-11-28 13:00:00.000000","expires_on":1795870800}', "token-az-cli")
    put("fuzz_parse", b'\x03{"access_token":"tok","expires_on":"11/10/2022 12:07:05 PM +01:00","resource":"r"}', "token-msi-2017")
    put("fuzz_parse", b'\x03{"token_type":"Bearer","expires_in":3599,"access_token":"eyJhbGciOi"}', "token-entra")
    for v in ["120", "0", "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
              "Sun Nov  6 08:49:37 1994", "Sat, 28 Nov 2026 12:00:30 GMT", "99999999999999999999"]:
        put("fuzz_parse", b"\x04" + v.encode(), "retry-after-" + hashlib.sha1(v.encode()).hexdigest()[:8])
    for v in ["3749", "Microsoft.Compute/LowCostGetSubscriptionMaximum;23999,Microsoft.Compute/LowCostGetResource;32",
              "11999, 11998"]:
        put("fuzz_parse", b"\x05" + v.encode(), "ratelimit-" + hashlib.sha1(v.encode()).hexdigest()[:8])

    # fuzz_fastjson: any JSON (differential against cJSON): the fixtures' bodies, one VM and one
    # disk element of the demo, and cJSON's quirks (numbers, escapes, duplicate keys, a BOM, tabs).
    for name, status, body in bodies():
        put("fuzz_fastjson", body, "fixture-%d-%s" % (status, name))
    demo = json.loads(read(os.path.join(ROOT, "examples", "demo-estate.json")))
    put("fuzz_fastjson", json.dumps(demo["virtualMachines"][0], indent=2), "vm-element.json")
    put("fuzz_fastjson", json.dumps(demo["disks"][0], indent=2), "disk-element.json")
    put("fuzz_fastjson", b'{"a":[1,-2.5e3,0.1,true,false,null,"x\\u00e9\\ud83d\\ude00\\n\\"\\\\/"],"b":{},"c":[],"a":{"d":[[[]]]}}',
        "escapes-dup-keys.json")
    put("fuzz_fastjson", b"[01,1.,-.5,1e999,-1e999,3000000000,-3000000000,2147483647,-2147483648,"
        b"123456789012345678901234567890,-0]", "numbers.json")
    put("fuzz_fastjson", b'\xef\xbb\xbf [ "raw\ttab" , "\\uzzzz" ,"\\u\\"00"] trailing', "quirks.json")

    # fuzz_url: URLs the scan builds or follows, and ARM IDs.
    urls = ["https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv?api-version=2024-11-01",
            "https://kv-prod.vault.azure.net/secrets/bek/0123456789abcdef",
            "https://kv-prod.vault.azure.net:443/keys/kek/01",
            "https://graph.microsoft.com/v1.0/servicePrincipals?$filter=appId%20eq%20'262044b1'",
            "https://login.microsoftonline.com/tenant/oauth2/v2.0/token",
            "https://127.0.0.1:8443/arm/subscriptions/s/providers?x=1",
            "https://127.0.0.1:8443/arm/graph/v1.0/me",
            "http://disksvchost:99/subscriptions/s/providers/Microsoft.Compute/disks?$skiptoken=x",
            "https://management.azure.com/subscriptions/s/%2e%2e/x",
            "https://user@management.azure.com/",
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg_1/providers/Microsoft.Compute/virtualMachines/vm(1)",
            "/providers/Microsoft.Management/managementGroups/mg",
            "/subscriptions/s/resourceGroups/../x"]
    for u in urls:
        put("fuzz_url", u)
    for name, status, body in bodies():
        doc = json.loads(body) if body[:1] in (b"{", b"[") else None
        if isinstance(doc, dict):
            for k in ("id", "nextLink"):
                if isinstance(doc.get(k), str):
                    put("fuzz_url", doc[k])

    # fuzz_jwt: a shape like Entra ID's, and broken ones.
    hdr = b64url(b'{"typ":"JWT","alg":"RS256","x5t":"abc"}')
    pay = b64url(json.dumps({"aud": "https://management.core.windows.net/", "iss": "https://sts.windows.net/t/",
                             "oid": "o", "tid": "t", "idtyp": "app", "appid": "a", "upn": "u@x"}).encode())
    put("fuzz_jwt", "%s.%s.sig" % (hdr, pay), "entra-like")
    put("fuzz_jwt", "%s.%s" % (hdr, b64url(b"[1,2]")), "array-payload")
    put("fuzz_jwt", "a.b.c", "tiny")

    # fuzz_escape: hostile names and tags.
    for s in ['=cmd|\' /C calc\'!A0', '+1+1', '-2', '@SUM(1)', '\tx', '\rx', 'a,"b"\r\nc',
              '<script>alert(1)</script>&amp;', "O'Brien \"q\"", '\x1b[2J\x1b]0;title\x07',
              'name\u202ereversed\u2066', '\u0085\u009b31m', '\xff\xfe bad utf8'.encode('latin-1').decode('latin-1'),
              '| a | `b` *c* _d_ [e](f) ~g~ #h !i {j} \\k', 'normal-vault-01']:
        put("fuzz_escape", s.encode("utf-8", "surrogatepass"))
    put("fuzz_escape", b"\xff\xfe\xc0\xaf\xed\xa0\x80\xef\xbf\xbe bad", "invalid-utf8")


if __name__ == "__main__":
    main()
