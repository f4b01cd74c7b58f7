#!/usr/bin/env python3
"""
End-to-end tests of restore readiness (issue 8, the Key Vault data plane, KVA-RST-*): the real
kvaudit binary against the Azure emulator and on the offline demo.

    python3 tests/e2e/test_restore.py --kvaudit build/kvaudit --source .  [test names]

Checks each KVA-RST rule failing and passing where the demo says, the live scan reproducing the
offline demo, that no request ever asks for a secret's value (Get Secret, Get Deleted Secret) and
no snapshot holds one, that no request leaves the cloud's Key Vault suffix, that a 403 from the
data plane (access policy, RBAC, Azure Policy) makes the rules `error` with the permission to
grant and a firewalled vault `error` as unreachable (never a missing key), and the
--expiry-warning / --as-of window.

Python 3 standard library only.  Prints "N passed, N failed" last.
"""
import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emulator_helper import ARGS, Emulator, kvaudit, main  # noqa: E402

AS_OF = "2026-11-28T12:00:00Z"   # the demo's collectedAt
RST = ["KVA-RST-%03d" % i for i in range(1, 10)]

# (rule, vm, vault) of every failing KVA-RST finding of the demo (examples/README.md); every other
# applicable binding passes.
DEMO_FAILS = {
    ("KVA-RST-001", "nw-bi01", "kv-nw-bi-weu"),
    ("KVA-RST-002", "nw-bi01", "kv-nw-prod-weu"),
    ("KVA-RST-003", "nw-dev-build01", "kv-nw-dev-neu"),
    ("KVA-RST-003", "nw-legacy-app01", "kv-nw-apps-weu"),
    ("KVA-RST-004", "nw-erp-db01", "kv-nw-prod-weu"),
    ("KVA-RST-005", "nwlog-wms01", "kv-nwlog-data-eus"),
    ("KVA-RST-006", "nw-erp-db01", "kv-nw-shared-weu"),
    ("KVA-RST-007", "nw-web02", "kv-nw-rbac-weu"),
    ("KVA-RST-008", "nw-web01", "kv-nw-apps-weu"),
    ("KVA-RST-009", "nw-ftp01", "kv-nw-prod-weu"),
}
# Requests kvaudit may make on a Key Vault host: none of them returns a secret's value.
ALLOWED_KV_PATHS = [r"/keys/[^/]+/[^/]+", r"/deletedkeys/[^/]+", r"/secrets/[^/]+/versions", r"/deletedsecrets"]


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def rst(report):
    return [f for f in report["findings"] if f["rule"] in RST]


def audit(estate, *extra):
    """kvaudit audit ESTATE --include-pass --include-skipped --out - (JSON) -> (completed process, report or None)."""
    r = subprocess.run([ARGS["kvaudit"], "audit", estate, "--include-pass", "--include-skipped", "--out", "-", "-q",
                        *extra],
                       capture_output=True, text=True, timeout=60)
    try:
        return r, json.loads(r.stdout)
    except ValueError:
        return r, None


def demo_path():
    return os.path.join(ARGS["source"], "examples", "demo-estate.json")


def key(f):
    return (f["rule"], f["status"], f["vmName"], f["vaultName"])


class DemoLive(unittest.TestCase):
    """The demo scanned live with --data-plane."""

    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator()
        cls.out = os.path.join(cls.emu.dir, "live.json")
        cls.estate = os.path.join(cls.emu.dir, "estate.json")
        cls.res = kvaudit(cls.emu, ["scan", "--data-plane", "--include-pass", "--include-skipped", "--out", cls.out,
                                    "--save-estate", cls.estate, "--as-of", AS_OF, "-q"])
        cls.log = cls.emu.requests()

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def test_every_rule_fails_and_passes_where_the_demo_says(self):
        got = rst(load(self.out))
        fails = {(f["rule"], f["vmName"], f["vaultName"]) for f in got if f["status"] == "fail"}
        self.assertEqual(fails, DEMO_FAILS)
        for rule in RST:
            with self.subTest(rule=rule):
                self.assertIn("pass", {f["status"] for f in got if f["rule"] == rule})
        self.assertEqual([f for f in got if f["status"] == "error"], [])

    def test_live_equals_the_offline_demo(self):
        r, off = audit(demo_path(), "--as-of", AS_OF)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(sorted(key(f) for f in rst(load(self.out))), sorted(key(f) for f in rst(off)))

    def test_the_snapshot_has_the_data_plane_lists_and_no_secret_value(self):
        est = load(self.estate)
        self.assertEqual(len(est["secrets"]), 15)
        self.assertEqual([s["id"].split("/")[4] for s in est["deletedSecrets"]],
                         ["DAD18A61-32A0-44BA-B277-58B44427A3DF"])
        self.assertEqual([k["key"]["kid"].split("/")[4] for k in est["deletedKeys"]], ["nw-erp-db-kek"])
        for item in est["secrets"] + est["deletedSecrets"]:
            self.assertNotIn("value", item)
        self.assertEqual([e for e in est["errors"] if e["scope"].startswith("https://")], [])

    def test_no_request_asks_for_a_secret_value(self):
        kv = [r for r in self.log if r["surface"] == "keyvault"]
        self.assertGreater(len(kv), 20)
        for r in kv:
            self.assertEqual(r["method"], "GET")
            self.assertTrue(any(re.fullmatch(p, r["path"]) for p in ALLOWED_KV_PATHS), r["path"])
        self.assertTrue(any(r["path"].endswith("/versions") for r in kv))

    def test_no_request_leaves_the_cloud(self):
        for r in self.log:
            host = (r.get("host") or "").split(":")[0].lower()
            self.assertTrue(host in ("127.0.0.1", "localhost") or host.endswith(".vault.emulator.test"), host)
        for r in self.log:
            if r["surface"] == "keyvault":
                self.assertTrue(r["host"].lower().endswith(".vault.emulator.test"), r)

    def test_deleted_secrets_are_listed_once_per_vault_and_only_when_needed(self):
        lists = [r["host"] for r in self.log if r["surface"] == "keyvault" and r["path"] == "/deletedsecrets"]
        self.assertEqual(sorted(lists), sorted(set(lists)))
        self.assertEqual(sorted(h.split(".")[0] for h in lists), ["kv-nw-bi-weu", "kv-nw-prod-weu"])

    def test_evidence_carries_urls_attributes_and_dates(self):
        f = next(f for f in rst(load(self.out)) if f["rule"] == "KVA-RST-002" and f["status"] == "fail")
        d = f["evidence"]["binding.bek.secrets"][0]
        self.assertEqual(d["state"], "deleted")
        self.assertEqual(d["scheduledPurgeDate"], "2027-02-18T14:05:00Z")
        self.assertTrue(d["recoveryId"].endswith("/deletedsecrets/DAD18A61-32A0-44BA-B277-58B44427A3DF"))
        self.assertIn(d["url"], f["message"])
        f = next(f for f in rst(load(self.out)) if f["rule"] == "KVA-RST-004" and f["status"] == "fail")
        d = [x for x in f["evidence"]["binding.bek.secrets"] if x["state"] == "expiring"]
        self.assertEqual([x["exp"] for x in d], ["2026-12-20T00:00:00Z"])


def data_plane_overlay():
    """Firewall, access-policy, RBAC and Azure Policy refusals on four vaults; an EC KEK and a
    secret with three versions (paged by 2) elsewhere."""
    demo = load(demo_path())
    keys = copy.deepcopy(demo["keys"])
    for k in keys:
        if "/keys/nw-erp-kek/" in k["key"]["kid"]:
            k["key"]["kty"] = "EC"
            k["key"]["crv"] = "P-256"
            for f in ("n", "e"):
                k["key"].pop(f, None)
            k["key"]["x"], k["key"]["y"] = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", \
                "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
            k["key"]["key_ops"] = ["sign", "verify"]
    secrets = copy.deepcopy(demo["secrets"])
    target = next(s for s in secrets if "D9BD716F" in s["id"])
    base = target["id"].rsplit("/", 1)[0]
    for i, v in enumerate(("00000000000000000000000000000001", "00000000000000000000000000000002")):
        older = copy.deepcopy(target)
        older["id"] = base + "/" + v
        older["attributes"]["enabled"] = False
        older["attributes"]["created"] -= 86400 * (i + 1)
        secrets.insert(0, older)
    return {"keys": keys, "secrets": secrets, "emulator": {"dataPlane": {
        "mode": "open",
        "firewall": ["kv-nw-dev-neu"],
        "deny": [{"vault": "kv-nw-apps-weu", "objectId": "*"},
                 {"vault": "kv-nw-rbac-weu", "objectId": "*"},
                 {"vault": "kv-nwlog-ops-eus", "objectId": "*", "innererror": "ForbiddenByPolicy"}]}}}


class DataPlaneRefusals(unittest.TestCase):
    """A 403 from the data plane is `error` with what to grant; a firewall is `unreachable`."""

    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator(overlay=data_plane_overlay())
        cls.out = os.path.join(cls.emu.dir, "live.json")
        cls.estate = os.path.join(cls.emu.dir, "estate.json")
        cls.res = kvaudit(cls.emu, ["scan", "--data-plane", "--include-pass", "--include-skipped", "--out", cls.out,
                                    "--save-estate", cls.estate, "--as-of", AS_OF, "-q"])
        cls.report = load(cls.out) if os.path.exists(cls.out) else None
        cls.log = cls.emu.requests()

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def findings(self, vm, vault):
        return {f["rule"]: f for f in rst(self.report) if f["vmName"] == vm and f["vaultName"] == vault}

    def test_the_scan_is_incomplete_not_failed_or_crashed(self):
        self.assertEqual(self.res.returncode, 3, self.res.stderr)
        self.assertFalse(self.report["scan"]["complete"])

    def test_access_policy_403_names_the_permission_to_grant(self):
        got = self.findings("nw-legacy-app01", "kv-nw-apps-weu")
        for rule in ("KVA-RST-001", "KVA-RST-002", "KVA-RST-003", "KVA-RST-004"):
            self.assertEqual(got[rule]["status"], "error", got[rule])
            self.assertIn("secrets: get, list", got[rule]["reason"])
            self.assertIn("Key Vault Reader", got[rule]["reason"])
        kek = self.findings("nw-web01", "kv-nw-apps-weu")["KVA-RST-005"]
        self.assertEqual(kek["status"], "error")
        self.assertIn("keys: get, list", kek["reason"])
        errs = [e for e in load(self.estate)["errors"] if "kv-nw-apps-weu" in e["scope"]]
        self.assertTrue(errs and all(e["status"] == 403 and e["code"] == "AccessDenied" for e in errs), errs)
        self.assertTrue(all(e["scope"].startswith("https://kv-nw-apps-weu.") for e in errs), errs)

    def test_rbac_403_is_an_error(self):
        got = self.findings("nw-web02", "kv-nw-rbac-weu")
        self.assertEqual({got[r]["status"] for r in RST}, {"error"})
        self.assertIn("ForbiddenByRbac", got["KVA-RST-001"]["reason"])
        self.assertIn("Microsoft.KeyVault/vaults/secrets/readMetadata/action", got["KVA-RST-001"]["reason"])

    def test_azure_policy_403_is_an_error(self):
        got = self.findings("nwlog-tms01", "kv-nwlog-ops-eus")
        self.assertEqual(got["KVA-RST-001"]["status"], "error")
        self.assertIn("ForbiddenByPolicy", got["KVA-RST-001"]["reason"])

    def test_a_firewalled_vault_is_unreachable_not_missing(self):
        got = self.findings("nw-dev-build01", "kv-nw-dev-neu")
        for rule in ("KVA-RST-001", "KVA-RST-002", "KVA-RST-003", "KVA-RST-004"):
            self.assertEqual(got[rule]["status"], "error", got[rule])
            self.assertIn("unreachable", got[rule]["reason"])
            self.assertIn("ForbiddenByFirewall", got[rule]["reason"])
        errs = [e for e in load(self.estate)["errors"] if "kv-nw-dev-neu" in e["scope"]]
        self.assertEqual([(e["status"], e["code"]) for e in errs], [(403, "ForbiddenByFirewall")])

    def test_the_other_vaults_are_still_judged(self):
        self.assertEqual(self.findings("nw-bi01", "kv-nw-bi-weu")["KVA-RST-001"]["status"], "fail")
        self.assertEqual(self.findings("nw-erp-db01", "kv-nw-shared-weu")["KVA-RST-006"]["status"], "fail")

    def test_an_ec_key_is_not_a_usable_kek(self):
        got = self.findings("nw-erp-app01", "kv-nw-prod-weu")
        self.assertEqual(got["KVA-RST-009"]["status"], "fail")
        ev = got["KVA-RST-009"]["evidence"]["binding.kek.keys"][0]
        self.assertEqual(ev["kty"], "EC")

    def test_the_named_version_is_found_across_pages(self):
        est = load(self.estate)
        hit = [s for s in est["secrets"] if "D9BD716F" in s["id"]]
        self.assertEqual(len(hit), 1)
        self.assertTrue(hit[0]["id"].endswith("/360f1b1d27bacbd660b6eb7718a6ee54"))
        self.assertTrue(hit[0]["attributes"]["enabled"])
        paged = [r for r in self.log if r["surface"] == "keyvault" and "D9BD716F" in r["path"]]
        self.assertEqual(len(paged), 2)
        self.assertIn("skiptoken", paged[1]["query"].lower())

    def test_still_no_request_for_a_secret_value(self):
        for r in self.log:
            if r["surface"] == "keyvault":
                self.assertTrue(any(re.fullmatch(p, r["path"]) for p in ALLOWED_KV_PATHS), r["path"])


class ForeignSecretUrl(unittest.TestCase):
    """A BEK secret URL outside the cloud's Key Vault suffix is never requested."""

    def test_foreign_secret_url_is_refused(self):
        demo = load(demo_path())
        changed = 0
        for d in demo["disks"]:
            for es in (d.get("properties", {}).get("encryptionSettingsCollection") or {}).get("encryptionSettings", []):
                dek = es.get("diskEncryptionKey")
                if dek and "D9BD716F" in (dek.get("secretUrl") or ""):
                    dek["secretUrl"] = "https://kv-evil.attacker.example/secrets/D9BD716F/360f1b1d27bacbd660b6eb7718a6ee54"
                    changed += 1
        self.assertEqual(changed, 1)
        emu = Emulator(overlay={"disks": demo["disks"]})
        try:
            out = os.path.join(emu.dir, "r.json")
            estate = os.path.join(emu.dir, "e.json")
            r = kvaudit(emu, ["scan", "--data-plane", "--out", out, "--save-estate", estate, "-q",
                              "--include-pass", "--include-skipped", "--as-of", AS_OF])
            self.assertEqual(r.returncode, 3, r.stderr)
            errs = [e for e in load(estate)["errors"] if "attacker" in e["scope"]]
            self.assertEqual([e["code"] for e in errs], ["ForeignHost"])
            self.assertFalse(any("attacker" in (x.get("host") or "") for x in emu.requests()))
            bad = [f for f in rst(load(out)) if f["rule"] == "KVA-RST-001" and f["vmName"] == "nw-erp-app01"]
            self.assertTrue(bad and all(f["status"] == "error" for f in bad), bad)
        finally:
            emu.stop()


class ExpiryWindow(unittest.TestCase):
    """--expiry-warning and --as-of, judged at audit time against the snapshot's attributes."""

    def fails(self, *extra):
        r, rep = audit(demo_path(), *extra)
        self.assertIn(r.returncode, (0, 1), r.stderr)
        return {(f["rule"], f["vmName"]) for f in rst(rep) if f["status"] == "fail"}

    def test_the_default_window_is_30_days(self):
        got = self.fails("--as-of", AS_OF)
        self.assertIn(("KVA-RST-004", "nw-erp-db01"), got)   # 2026-12-20: 21.5 days
        self.assertIn(("KVA-RST-008", "nw-web01"), got)      # 2026-12-15: 16.5 days
        self.assertEqual(got, self.fails("--as-of", AS_OF, "--expiry-warning", "30d"))

    def test_a_narrower_window(self):
        got = self.fails("--as-of", AS_OF, "--expiry-warning", "20d")
        self.assertNotIn(("KVA-RST-004", "nw-erp-db01"), got)
        self.assertIn(("KVA-RST-008", "nw-web01"), got)
        got = self.fails("--as-of", AS_OF, "--expiry-warning", "0")
        self.assertFalse({g for g in got if g[0] in ("KVA-RST-004", "KVA-RST-008")}, got)
        got = self.fails("--as-of", AS_OF, "--expiry-warning", "400h")   # 16.7 days
        self.assertIn(("KVA-RST-008", "nw-web01"), got)

    def test_later_the_expiring_ones_have_expired(self):
        got = self.fails("--as-of", "2026-12-16")
        self.assertIn(("KVA-RST-007", "nw-web01"), got)       # the KEK expired on 2026-12-15
        self.assertNotIn(("KVA-RST-008", "nw-web01"), got)
        self.assertIn(("KVA-RST-004", "nw-erp-db01"), got)

    def test_after_the_purge_date_a_deleted_secret_is_missing(self):
        got = self.fails("--as-of", "2027-03-01")
        self.assertIn(("KVA-RST-001", "nw-bi01"), got)
        self.assertNotIn(("KVA-RST-002", "nw-bi01"), got)

    def test_bad_values_are_usage_errors(self):
        for args in (["--expiry-warning", "30x"], ["--expiry-warning", "-1d"], ["--expiry-warning", "4000d"],
                     ["--as-of", "2026-02-30T25:00:00Z"], ["--as-of", "yesterday"]):
            with self.subTest(args=args):
                r, _ = audit(demo_path(), *args)
                self.assertEqual(r.returncode, 2, r)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
                self.assertIn(args[0], r.stderr)

    def test_without_data_plane_lists_the_rules_are_skipped(self):
        demo = load(demo_path())
        for k in ("secrets", "keys", "deletedSecrets", "deletedKeys"):
            demo.pop(k, None)
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "e.json")
            with open(p, "w", encoding="utf-8") as f:
                json.dump(demo, f)
            r, rep = audit(p, "--as-of", AS_OF)
        self.assertEqual({f["status"] for f in rst(rep)}, {"skipped"})
        self.assertTrue(all("--data-plane" in f["reason"] for f in rst(rep)))


if __name__ == "__main__":
    sys.exit(main())
