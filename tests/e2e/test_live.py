#!/usr/bin/env python3
"""End-to-end tests of the live scan: the real kvaudit binary against the Azure emulator
(tests/emulator/emulator.py) over real HTTPS on 127.0.0.1.

Run by ctest as: test_live.py --kvaudit BIN --source REPO
Asserts on kvaudit's JSON report, its exit codes and output, and on the emulator's request log
(what was sent, with which token, to which host). Prints 'N passed, N failed'.
"""
import http.server
import json
import os
import ssl
import subprocess
import sys
import threading
import unittest

from emulator_helper import ARGS, AVA, Emulator, kvaudit, main

T_TRADERS = "3f6b2c8e-5a41-4d7f-9c2e-8b1a7d4e6f20"
T_LOGISTICS = "9c1d4e7a-2b36-4f58-a1c9-5e0f3b7d2a84"
AS_OF = "2026-11-28T12:00:00Z"   # the demo's collectedAt: expiry is judged as of then, live and offline


def findings(path):
    with open(path) as f:
        return json.load(f)


def key(f):
    return (f["rule"], f["status"], (f["vm"] or "").lower(), (f["vault"] or "").lower(), f["tenant"])


class DemoScan(unittest.TestCase):
    """The demo scenario scanned live by the Guest/Member user Ava (the Azure CLI credential)."""

    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator()
        cls.out = os.path.join(cls.emu.dir, "live.json")
        cls.estate = os.path.join(cls.emu.dir, "estate.json")
        cls.scan_result = kvaudit(cls.emu, ["scan", "--data-plane", "--include-pass", "--out", cls.out,
                                    "--save-estate", cls.estate, "--as-of", AS_OF], auth="cli")
        cls.log = cls.emu.requests()

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def test_scan_exits_1_for_the_demo_failures(self):
        self.assertEqual(self.scan_result.returncode, 1, self.scan_result.stderr)

    def test_live_findings_reproduce_the_offline_demo(self):
        offline = os.path.join(self.emu.dir, "offline.json")
        r = subprocess.run([ARGS["kvaudit"], "audit", os.path.join(ARGS["source"], "examples/demo-estate.json"),
                            "--include-pass", "--out", offline, "-q", "--as-of", AS_OF], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1, r.stderr)
        live = {key(f) for f in findings(self.out)["findings"]}
        off = {key(f) for f in findings(offline)["findings"]}
        self.assertEqual(live ^ off, set())
        self.assertEqual(len(live), len(off))

    def test_the_guest_tenant_is_flagged(self):
        ten = [f for f in findings(self.out)["findings"] if f["rule"] == "KVA-TEN-001"]
        by_tenant = {f["tenant"]: f["status"] for f in ten}
        self.assertEqual(by_tenant.get(T_LOGISTICS), "fail")
        self.assertEqual(by_tenant.get(T_TRADERS), "pass")

    def test_paging_follows_every_next_link(self):
        paged = [r for r in self.log if "skiptoken" in (r.get("query") or "").lower()]
        self.assertGreater(len(paged), 5, "the emulator pages every list by 2: nextLinks must be followed")
        self.assertTrue(all(r["status"] == 200 for r in paged))

    def test_every_request_carries_the_right_token_for_its_host(self):
        for r in self.log:
            if r["surface"] in ("arm", "graph", "keyvault"):
                self.assertTrue(r["authorization"], r)
                aud = (r["token"] or {}).get("aud", "")
                want = {"arm": "management", "graph": "graph", "keyvault": "vault"}[r["surface"]]
                self.assertIn(want, aud, r)

    def test_both_tenants_are_read_with_their_own_tokens(self):
        tids = {(r["token"] or {}).get("tid") for r in self.log if r["surface"] == "arm"}
        self.assertTrue({T_TRADERS, T_LOGISTICS} <= tids, tids)

    def test_api_versions_are_never_rejected(self):
        bad = [r for r in self.log if r["status"] == 400 and r["surface"] == "arm"]
        self.assertEqual(bad, [])

    def test_no_token_in_any_output(self):
        texts = [self.scan_result.stdout, self.scan_result.stderr, open(self.out).read(), open(self.estate).read()]
        for t in texts:
            self.assertNotIn("eyJ", t, "something that looks like a JWT was written")

    def test_the_snapshot_is_private_and_audits_to_the_same_findings(self):
        self.assertEqual(os.stat(self.estate).st_mode & 0o777, 0o600)
        again = os.path.join(self.emu.dir, "again.json")
        r = subprocess.run([ARGS["kvaudit"], "audit", self.estate, "--include-pass", "--out", again, "-q",
                            "--as-of", AS_OF], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual({key(f) for f in findings(again)["findings"]},
                         {key(f) for f in findings(self.out)["findings"]})

    def test_key_bundles_were_read_on_the_data_plane(self):
        est = findings(self.estate)
        self.assertGreater(len(est.get("keys", [])), 0)
        kv = [r for r in self.log if r["surface"] == "keyvault"]
        self.assertGreater(len(kv), 0)
        managed = [f for f in findings(self.out)["findings"] if f["rule"] == "KVA-LIM-003" and f["status"] == "fail"]
        self.assertEqual(len(managed), 1)


class CollectThenAudit(unittest.TestCase):
    """`kvaudit collect` writes the snapshot that `kvaudit audit` judges like `scan` does."""

    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator(overlay={"emulator": {"emptyPage": "middle"}})

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def test_collect_then_audit_equals_scan(self):
        estate = os.path.join(self.emu.dir, "collected.json")
        r = kvaudit(self.emu, ["collect", "--out", estate, "-q"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(os.stat(estate).st_mode & 0o777, 0o600)
        snap = findings(estate)
        self.assertEqual(snap["kind"], "kvaudit.estate")
        self.assertEqual(snap["errors"], [])
        self.assertEqual(len(snap["subscriptions"]), 4)
        offline = os.path.join(self.emu.dir, "offline.json")
        r = subprocess.run([ARGS["kvaudit"], "audit", estate, "--include-pass", "--out", offline, "-q"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 1, r.stderr)
        live = os.path.join(self.emu.dir, "live.json")
        r = kvaudit(self.emu, ["scan", "--include-pass", "--out", live, "-q"])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual({key(f) for f in findings(offline)["findings"]},
                         {key(f) for f in findings(live)["findings"]})

    def test_empty_pages_in_the_middle_are_followed(self):
        estate = os.path.join(self.emu.dir, "paged.json")
        r = kvaudit(self.emu, ["collect", "--out", estate, "-q"])
        self.assertEqual(r.returncode, 0, r.stderr)
        demo = findings(os.path.join(ARGS["source"], "examples/demo-estate.json"))
        self.assertEqual(len(findings(estate)["virtualMachines"]), len(demo["virtualMachines"]))

    def test_one_subscription_only(self):
        estate = os.path.join(self.emu.dir, "one.json")
        sub = findings(os.path.join(ARGS["source"], "examples/demo-estate.json"))["subscriptions"][0]["subscriptionId"]
        r = kvaudit(self.emu, ["collect", "--subscription", sub, "--out", estate, "-q"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([s["subscriptionId"] for s in findings(estate)["subscriptions"]], [sub])

    def test_a_subscription_that_is_not_a_guid_is_bad_usage(self):
        r = kvaudit(self.emu, ["collect", "--subscription", "../../x", "--out", "x.json"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("--subscription", r.stderr)

    def test_live_inventory(self):
        r = kvaudit(self.emu, ["inventory", "--format", "json", "-q"])
        self.assertEqual(r.returncode, 0, r.stderr)
        inv = json.loads(r.stdout)
        self.assertEqual(len(inv["vms"]), 12)


class ForeignKeyUrl(unittest.TestCase):
    """A key URL outside the cloud's Key Vault suffix is never requested with a token."""

    def test_foreign_key_url_is_refused(self):
        demo = findings(os.path.join(ARGS["source"], "examples/demo-estate.json"))
        changed = 0
        for d in demo["disks"]:
            for es in (d.get("properties", {}).get("encryptionSettingsCollection") or {}).get("encryptionSettings", []):
                kek = es.get("keyEncryptionKey")
                if kek and not changed:
                    kek["keyUrl"] = "https://kv-evil.attacker.example/keys/k/0123456789abcdef"
                    changed += 1
        self.assertEqual(changed, 1)
        emu = Emulator(overlay={"disks": demo["disks"]})
        try:
            out = os.path.join(emu.dir, "r.json")
            estate = os.path.join(emu.dir, "e.json")
            r = kvaudit(emu, ["scan", "--data-plane", "--out", out, "--save-estate", estate, "-q"])
            self.assertEqual(r.returncode, 3, r.stderr)
            errs = [e for e in findings(estate)["errors"] if "attacker" in e["scope"]]
            self.assertEqual(len(errs), 1, findings(estate)["errors"])
            self.assertEqual(errs[0]["code"], "ForeignHost")
            self.assertFalse(any("attacker" in (x.get("host") or "") for x in emu.requests()))
        finally:
            emu.stop()


class Credentials(unittest.TestCase):
    """Every credential type signs in (whoami) against the emulator."""

    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator()

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def whoami(self, auth):
        r = kvaudit(self.emu, ["whoami"], auth=auth)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("can list", r.stdout)
        self.assertNotIn("eyJ", r.stdout + r.stderr)
        return r.stdout

    def test_client_secret(self):
        self.assertIn("servicePrincipal", self.whoami("secret"))

    def test_client_certificate(self):
        self.emu.clear()
        self.whoami("certificate")
        grants = [r for r in self.emu.requests() if r["surface"] == "login"]
        self.assertTrue(any(r.get("credential") == "certificate" for r in grants), grants)

    def test_federated_token_file(self):
        self.emu.clear()
        self.whoami("federated")
        grants = [r for r in self.emu.requests() if r["surface"] == "login"]
        self.assertTrue(any(r.get("credential") == "federated" for r in grants), grants)

    def test_managed_identity_through_imds(self):
        self.assertIn("managedIdentity", self.whoami("imds"))

    def test_managed_identity_through_app_service(self):
        self.assertIn("managedIdentity", self.whoami("appservice"))

    def test_azure_cli(self):
        self.assertIn(AVA, self.whoami("cli"))

    def test_a_wrong_secret_exits_5_without_echoing_it(self):
        env = self.emu.env("secret")
        env["AZURE_CLIENT_SECRET"] = "not-the-secret-xyz"
        r = subprocess.run([ARGS["kvaudit"], "whoami", "--cloud", self.emu.cloud], env=env,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 5, r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertNotIn("not-the-secret-xyz", r.stderr + r.stdout)

    def test_no_credential_at_all_says_what_to_set(self):
        env = self.emu.env("secret")
        for k in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"):
            env.pop(k)
        r = subprocess.run([ARGS["kvaudit"], "whoami", "--cloud", self.emu.cloud], env=env,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 5)
        self.assertIn("AZURE_CLIENT_ID", r.stderr)

    def test_an_untrusted_certificate_is_refused_and_nothing_is_sent(self):
        cloud = json.load(open(self.emu.cloud))
        cloud.pop("caBundle")
        path = os.path.join(self.emu.dir, "no-ca.json")
        with open(path, "w") as f:
            json.dump(cloud, f)
        self.emu.clear()
        r = kvaudit(self.emu, ["whoami"], cloud=path)
        self.assertEqual(r.returncode, 5, r.stderr)
        self.assertIn("certificate", r.stderr.lower())
        self.assertEqual([x for x in self.emu.requests() if x["surface"] == "login"], [])


class Faults(unittest.TestCase):
    """Throttling, server errors, forbidden resources, token expiry and foreign hosts."""

    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator()

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def setUp(self):
        self.emu.clear()
        self.out = os.path.join(self.emu.dir, f"{self._testMethodName}.json")

    def scan(self, fault=None):
        """Injects fault (an emulator fault or a list of them), then scans with the ARM engine (the
        faults are on ARM's lists; test_graph.py injects Resource Graph's)."""
        if fault:
            self.emu.call("POST", "/_emulator/faults", fault)
        return kvaudit(self.emu, ["scan", "--engine", "arm", "--out", self.out, "-q"])

    def test_429_with_retry_after_is_retried_then_succeeds(self):
        r = self.scan({"match": {"pathRegex": "Microsoft.KeyVault/vaults$"},
                       "status": 429, "retryAfter": 1, "times": 2})
        self.assertEqual(r.returncode, 1, r.stderr)
        log = [x for x in self.emu.requests() if x["path"].endswith("Microsoft.KeyVault/vaults")]
        self.assertEqual([x["status"] for x in log].count(429), 2)
        self.assertTrue(findings(self.out)["scan"]["complete"])

    def test_5xx_is_retried_then_succeeds(self):
        r = self.scan([
            {"match": {"pathRegex": "Microsoft.Compute/disks$"}, "status": 503, "times": 1},
            {"match": {"pathRegex": "Microsoft.RecoveryServices/vaults$"}, "status": 500, "times": 1}])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertTrue(findings(self.out)["scan"]["complete"])

    def test_a_reset_mid_body_is_retried(self):
        r = self.scan({"match": {"pathRegex": "Microsoft.Compute/disks$"},
                       "reset": True, "times": 1})
        self.assertEqual(r.returncode, 1, r.stderr)

    def test_a_forbidden_vault_list_makes_the_scan_incomplete_not_clean(self):
        r = self.scan({"match": {"pathRegex": "Microsoft.KeyVault/vaults$"},
                       "status": 403, "times": 0})
        self.assertEqual(r.returncode, 3, r.stderr)
        rep = findings(self.out)
        self.assertFalse(rep["scan"]["complete"])
        self.assertTrue(any(e["status"] == 403 for e in rep["errors"]))
        bkp = [f for f in rep["findings"] if f["rule"].startswith("KVA-BKP-00") and f["subject"] == "binding"]
        self.assertTrue(bkp and all(f["status"] == "error" for f in bkp), [f["status"] for f in bkp])

    def test_expired_tokens_are_renewed_mid_scan(self):
        r = self.scan({"match": {"pathRegex": "Microsoft.Compute/disks$"},
                       "expireTokens": True, "times": 1})
        self.assertEqual(r.returncode, 1, r.stderr)
        statuses = [x["status"] for x in self.emu.requests()]
        self.assertIn(401, statuses)
        self.assertTrue(findings(self.out)["scan"]["complete"])

    def test_malformed_json_is_an_error_not_a_crash(self):
        r = self.scan({"match": {"pathRegex": "Microsoft.Compute/disks$"},
                       "malformed": True, "times": 0})
        self.assertEqual(r.returncode, 3, r.stderr)

    def test_a_next_link_to_a_foreign_host_is_not_followed(self):
        seen = []

        class Trap(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append((self.path, self.headers.get("Authorization")))
                self.send_response(500)
                self.end_headers()

            def log_message(self, *a):
                pass

        trap = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trap)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(self.emu.dir, "server.pem"), os.path.join(self.emu.dir, "server.key"))
        trap.socket = ctx.wrap_socket(trap.socket, server_side=True)
        threading.Thread(target=trap.serve_forever, daemon=True).start()
        try:
            self.emu.call("POST", "/_emulator/config", {"nextLinkBase": f"https://localhost:{trap.server_port}"})
            r = self.scan()
        finally:
            self.emu.call("POST", "/_emulator/config", {"nextLinkBase": None})
            trap.shutdown()
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertEqual(seen, [], "no request, and so no token, may reach another host")
        self.assertTrue(any(e["code"] == "ForeignHost" for e in findings(self.out)["errors"]))


if __name__ == "__main__":
    sys.exit(main(__name__))
