#!/usr/bin/env python3
"""End-to-end tests of `kvaudit fix` and `kvaudit rollback`: the real binary against the Azure
emulator (tests/emulator/emulator.py) over real HTTPS on 127.0.0.1.

Run by ctest as: test_fix.py --kvaudit BIN --source REPO
Asserts on the emulator's stored state (vaults, role assignments) and request log, not only on
kvaudit's output. Prints 'N passed, N failed'.
"""
import copy
import json
import os
import sys
import unittest

from emulator_helper import ARGS, Emulator, kvaudit, main as run_main

BMS_TRADERS = "7e5c3a91-0d2f-4b6e-a8c4-19f2e6d0b3a5"
BMS_LOGISTICS = "c4a8e2f6-93b1-4d07-8e5a-6f1c2d9b0e37"
KV_ADMIN = "00482a5a-887f-4fb3-b363-3b7fe8e74483"
TEMPLATE = ["get", "list", "backup"]


class FixEmulator(Emulator):
    def vaults(self):
        return {n: self.vault(n) for n in VAULTS}


def demo():
    with open(os.path.join(ARGS["source"], "examples/demo-estate.json")) as f:
        return json.load(f)


VAULTS = []


def entry(vault, oid):
    for p in vault["properties"].get("accessPolicies", []):
        if p["objectId"].lower() == oid.lower() and not p.get("applicationId"):
            return p
    return None


def others(vault, oid):
    return [p for p in vault["properties"].get("accessPolicies", []) if p["objectId"].lower() != oid.lower()]


def perms(p, cat):
    return sorted(x.lower() for x in (p or {}).get("permissions", {}).get(cat, []) or [])


def policies(v):
    return v["properties"].get("accessPolicies", [])


class FixAndRollback(unittest.TestCase):
    """Plan, apply, re-apply, recompute from a stale snapshot, roll back: the full demo."""

    @classmethod
    def setUpClass(cls):
        cls.emu = FixEmulator()

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def test_1_plan_writes_nothing(self):
        self.emu.clear()
        r = kvaudit(self.emu, ["fix", "-q", "--out", "plan.json"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("vault kv-nwlog-data-eus", r.stdout)
        self.assertIn("plan only: nothing was changed", r.stdout)
        self.assertIn("will not touch", r.stdout)
        self.assertEqual(self.emu.writes(), [])
        plan = json.load(open(os.path.join(self.emu.dir, "plan.json")))
        self.assertEqual(plan["mode"], "plan")
        names = {p["name"]: p for p in plan["plan"]}
        self.assertEqual(names["kv-nw-shared-weu"]["change"]["accessPolicy"]["permissions"], {"keys": ["backup"]})
        self.assertEqual(names["kv-nwlog-rbac-eus"]["kind"], "role-assignment")

    def test_1b_plan_as_a_guest_says_backup_will_not_add_it(self):
        self.emu.clear()
        r = kvaudit(self.emu, ["fix", "-q"], auth="cli")
        self.assertEqual(r.returncode, 0, r.stderr)
        block = r.stdout.split("vault kv-nwlog-ops-eus ")[1].split("\nvault ")[0]
        self.assertIn("you are a guest", block)
        self.assertIn("accessPolicies/write", block)
        self.assertEqual(self.emu.writes(), [])

    def test_2_no_write_without_yes_when_stdin_is_not_a_terminal(self):
        self.emu.clear()
        before = self.emu.vaults()
        r = kvaudit(self.emu, ["fix", "-q", "--apply"])
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("--yes", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1)
        self.assertEqual(self.emu.writes(), [])
        self.assertEqual(self.emu.vaults(), before)

    def test_3_apply_grants_exactly_the_template_then_is_idempotent_then_rolls_back(self):
        emu = self.emu
        emu.clear()
        r = kvaudit(emu, ["collect", "-q", "--out", "stale.json"])
        self.assertEqual(r.returncode, 0, r.stderr)
        before, roles_before = emu.vaults(), emu.role_assignments()
        r = kvaudit(emu, ["fix", "-q", "--apply", "--yes", "--journal", "j.journal", "--out", "run.json"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        after = emu.vaults()
        # Exactly the template, keys only where a KEK is kept.
        data = entry(after["kv-nwlog-data-eus"], BMS_TRADERS)
        self.assertEqual(perms(data, "secrets"), sorted(TEMPLATE))
        self.assertEqual(perms(data, "keys"), sorted(TEMPLATE))
        self.assertEqual(perms(data, "certificates"), [])
        shared = entry(after["kv-nw-shared-weu"], BMS_TRADERS)
        self.assertEqual(perms(shared, "keys"), sorted(TEMPLATE))
        self.assertEqual(shared["permissions"]["secrets"], entry(before["kv-nw-shared-weu"], BMS_TRADERS)
                         ["permissions"]["secrets"])
        ops = entry(after["kv-nwlog-ops-eus"], BMS_LOGISTICS)
        self.assertEqual(ops["permissions"]["secrets"], ["get", "list", "backup"])
        self.assertEqual(ops["permissions"]["keys"], [])
        # Other principals' entries byte-for-byte; untouched vaults entirely.
        for name in VAULTS:
            changed = name in ("kv-nwlog-data-eus", "kv-nw-shared-weu", "kv-nwlog-ops-eus")
            if not changed:
                self.assertEqual(json.dumps(after[name], sort_keys=True), json.dumps(before[name], sort_keys=True),
                                 name)
                continue
            bms = BMS_LOGISTICS if name == "kv-nwlog-ops-eus" else BMS_TRADERS
            self.assertEqual(json.dumps(others(after[name], bms)), json.dumps(others(before[name], bms)), name)
            b, a = dict(before[name]), dict(after[name])
            for d in (a, b):
                d.pop("systemData", None)
                d["properties"] = {k: v for k, v in d["properties"].items() if k != "accessPolicies"}
            self.assertEqual(a, b, name)
        # One role assignment, on the RBAC vault, for Backup Management Service.
        roles = emu.role_assignments()
        new = [x for x in roles if x["id"] not in {y["id"] for y in roles_before}]
        self.assertEqual(len(new), 1)
        self.assertTrue(new[0]["properties"]["scope"].lower().endswith("/vaults/kv-nwlog-rbac-eus"))
        self.assertEqual(new[0]["properties"]["principalId"], BMS_LOGISTICS)
        self.assertTrue(new[0]["properties"]["roleDefinitionId"].endswith(KV_ADMIN))
        # Only accessPolicies/add and the role assignment PUT were written: never replace or a vault PUT.
        for w in emu.writes():
            self.assertTrue(w["path"].endswith("/accessPolicies/add") or "/roleAssignments/" in w["path"], w)
        # The journal is private and records the prior entry and the request; the report has before/after.
        journal = os.path.join(emu.dir, "j.journal")
        self.assertEqual(os.stat(journal).st_mode & 0o777, 0o600)
        self.assertNotIn("eyJ", open(journal).read())  # no bearer token (a JWT) ever lands in it
        self.assertNotIn("eyJ", r.stdout + r.stderr)
        lines = [json.loads(x) for x in open(journal)]
        intents = [x for x in lines if x["phase"] == "intent"]
        self.assertEqual(len(intents), 4)
        run = json.load(open(os.path.join(emu.dir, "run.json")))
        byname = {x["name"]: x for x in run["results"]}
        self.assertEqual(byname["kv-nwlog-ops-eus"]["status"], "applied")
        self.assertEqual(byname["kv-nwlog-ops-eus"]["before"]["permissions"]["secrets"], ["get", "list"])
        self.assertEqual(byname["kv-nwlog-ops-eus"]["after"]["permissions"]["secrets"], ["get", "list", "backup"])
        self.assertEqual(byname["kv-nwold-archive-weu"]["status"], "skipped")
        # Idempotent: a second run writes nothing and says so.
        emu.clear()
        r = kvaudit(emu, ["fix", "-q", "--apply", "--yes", "--journal", "j2.journal"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("nothing to change", r.stdout)
        self.assertEqual(emu.writes(), [])
        # A stale snapshot is recomputed live: every vault is already compliant.
        r = kvaudit(emu, ["fix", "-q", "--estate", "stale.json", "--apply", "--yes", "--journal", "j3.journal"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("vault kv-nwlog-data-eus: already compliant", r.stdout)
        self.assertIn("vault kv-nwlog-rbac-eus: already compliant", r.stdout)
        self.assertEqual(emu.writes(), [])
        # Rollback restores the exact prior state and deletes the role assignment it created.
        r = kvaudit(emu, ["rollback", "-q", "j.journal", "--yes"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        restored = emu.vaults()
        for name in VAULTS:
            self.assertEqual(json.dumps(policies(restored[name])), json.dumps(policies(before[name])), name)
        self.assertEqual(sorted(x["id"] for x in emu.role_assignments()), sorted(x["id"] for x in roles_before))
        for w in emu.writes():
            self.assertTrue(w["path"].endswith("/accessPolicies/add") or w["path"].endswith("/accessPolicies/remove")
                            or "/roleAssignments/" in w["path"], w)
        self.assertTrue(any(json.loads(x)["type"] == "undo-grant" for x in open(journal)))
        # A second rollback finds nothing left to undo.
        emu.clear()
        r = kvaudit(emu, ["rollback", "-q", "j.journal", "--yes"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("nothing to undo", r.stdout)
        self.assertEqual(emu.writes(), [])


class ChangedBetweenPlanAndApply(unittest.TestCase):
    def setUp(self):
        self.emu = FixEmulator()

    def tearDown(self):
        self.emu.stop()

    def test_recomputed_from_a_live_read(self):
        emu = self.emu
        r = kvaudit(emu, ["collect", "-q", "--out", "stale.json"])
        self.assertEqual(r.returncode, 0, r.stderr)
        # Someone grants the secrets after the snapshot was taken.
        r = kvaudit(emu, ["fix", "-q", "--vault", "kv-nwlog-data-eus", "--rule", "KVA-BKP-001", "--apply", "--yes",
                          "--journal", "first.journal"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        emu.clear()
        r = kvaudit(emu, ["fix", "-q", "--estate", "stale.json", "--vault", "kv-nwlog-data-eus", "--apply", "--yes",
                          "--journal", "second.journal", "--out", "run.json"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        run = json.load(open(os.path.join(emu.dir, "run.json")))
        sent = run["results"][0]["change"]["properties"]["accessPolicies"][0]["permissions"]
        self.assertEqual(sent, {"keys": ["get", "list", "backup"]})
        puts = [w for w in emu.writes() if w["method"] == "PUT"]
        self.assertEqual(len(puts), 1)


class Faults(unittest.TestCase):
    def setUp(self):
        d = demo()
        vaults = copy.deepcopy(d["vaults"])
        # A portal-made entry: PascalCase names.
        for v in vaults:
            if v["name"] == "kv-nw-shared-weu":
                for p in v["properties"]["accessPolicies"]:
                    if p["objectId"] == BMS_TRADERS:
                        p["permissions"] = {"keys": ["Get", "List"], "secrets": ["Get", "List"], "certificates": []}
        self.emu = FixEmulator(overlay={"vaults": vaults})

    def tearDown(self):
        self.emu.stop()

    def test_403_on_one_vault_and_429_then_200_on_another(self):
        emu = self.emu
        before = emu.vaults()
        emu.fault({"match": {"method": "PUT", "pathRegex": "kv-nwlog-ops-eus/accessPolicies/add"}, "times": 0,
                   "status": 403})
        emu.fault({"match": {"method": "PUT", "pathRegex": "kv-nw-shared-weu/accessPolicies/add"}, "times": 1,
                   "status": 429, "retryAfter": 1})
        r = kvaudit(emu, ["fix", "-q", "--vault", "kv-nwlog-ops-eus", "--vault", "kv-nw-shared-weu", "--apply",
                          "--yes", "--journal", "j.journal", "--out", "run.json"])
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
        self.assertIn("kv-nwlog-ops-eus", r.stderr)
        self.assertIn("403", r.stderr)
        self.assertNotIn("eyJ", r.stdout + r.stderr)
        run = json.load(open(os.path.join(emu.dir, "run.json")))
        byname = {x["name"]: x for x in run["results"]}
        self.assertEqual(byname["kv-nwlog-ops-eus"]["status"], "failed")
        self.assertEqual(byname["kv-nw-shared-weu"]["status"], "applied")
        after = emu.vaults()
        self.assertEqual(after["kv-nwlog-ops-eus"], before["kv-nwlog-ops-eus"])
        self.assertEqual(entry(after["kv-nw-shared-weu"], BMS_TRADERS)["permissions"]["keys"],
                         ["Get", "List", "backup"])

    def test_reset_after_the_write_then_rollback_restores_portal_cased_entry(self):
        emu = self.emu
        before = emu.vaults()
        # Every attempt's write lands and the connection drops: kvaudit cannot tell it worked.
        emu.fault({"match": {"method": "PUT", "pathRegex": "kv-nw-shared-weu/accessPolicies/add"}, "times": 0,
                   "reset": True})
        r = kvaudit(emu, ["fix", "-q", "--vault", "kv-nw-shared-weu", "--apply", "--yes", "--journal", "j.journal"])
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
        self.assertIn("backup", [x.lower() for x in entry(emu.vault("kv-nw-shared-weu"), BMS_TRADERS)
                                 ["permissions"]["keys"]])
        lines = [json.loads(x) for x in open(os.path.join(emu.dir, "j.journal"))]
        self.assertEqual(lines[0]["phase"], "intent")
        self.assertEqual(lines[0]["prior"]["permissions"]["keys"], ["Get", "List"])
        emu.clear()
        r = kvaudit(emu, ["rollback", "-q", "j.journal", "--yes"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(json.dumps(policies(emu.vault("kv-nw-shared-weu"))),
                         json.dumps(policies(before["kv-nw-shared-weu"])))
        removes = [w for w in emu.writes() if w["path"].endswith("/accessPolicies/remove")]
        self.assertEqual(len(removes), 1)


class Rbac(unittest.TestCase):
    def setUp(self):
        self.emu = FixEmulator()

    def tearDown(self):
        self.emu.stop()

    def test_one_role_assignment_and_rollback_deletes_it(self):
        emu = self.emu
        roles_before = emu.role_assignments()
        r = kvaudit(emu, ["fix", "-q", "--vault", "kv-nwlog-rbac-eus", "--apply", "--yes", "--journal", "j.journal"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        roles = emu.role_assignments()
        self.assertEqual(len(roles), len(roles_before) + 1)
        puts = [w for w in emu.writes() if w["method"] == "PUT"]
        self.assertEqual(len(puts), 1)
        self.assertIn("/roleAssignments/", puts[0]["path"])
        emu.clear()
        r = kvaudit(emu, ["rollback", "-q", "j.journal", "--yes"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(emu.role_assignments(), roles_before)
        self.assertEqual(len([w for w in emu.writes() if w["method"] == "DELETE"]), 1)


SCANNER_TRADERS = "e0a4c7d2-3f19-4b86-9d5e-7a2c1b8f6e03"     # kvaudit-scanner's service principals
SCANNER_LOGISTICS = "b5d9e2a7-40c6-4f18-8e3b-c1a7f5d0e924"
AVA_GUEST_LOGISTICS = "2e7f4a1b-c8d3-4e95-9a6f-0b1d5c8e3a72"
SETTINGS = ("enabledForDiskEncryption", "enableSoftDelete", "enablePurgeProtection")
SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
LOGISTICS_SUB = "6a0f9e2c-4b75-4e13-8d29-c5b1f7a3e6d8"


def vault_id(name):
    return next(v["id"] for v in demo()["vaults"] if v["name"] == name)


def without(vault, keys):
    """The vault without the given properties and systemData, for 'nothing else changed'."""
    v = copy.deepcopy(vault)
    v.pop("systemData", None)
    for k in keys:
        v["properties"].pop(k, None)
    return v


def arm_token(emu):
    """An ARM token of the scanner app, to talk to the emulator directly as Azure's own clients would."""
    import urllib.parse
    import urllib.request
    env = emu.env("secret")
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": env["AZURE_CLIENT_ID"],
                                   "client_secret": env["AZURE_CLIENT_SECRET"],
                                   "scope": "https://management.core.windows.net/.default"}).encode()
    req = urllib.request.Request(emu.base + "/login/%s/oauth2/v2.0/token" % env["AZURE_TENANT_ID"], data=form)
    with urllib.request.urlopen(req, context=emu.ctx, timeout=10) as r:
        return json.loads(r.read())["access_token"]


def arm_call(emu, method, path, body=None):
    """(status, JSON body) of an ARM request to the emulator with the scanner's token."""
    import urllib.error
    import urllib.request
    req = urllib.request.Request(emu.base + "/arm" + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": "Bearer " + arm_token(emu),
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=emu.ctx, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class VaultSettings(unittest.TestCase):
    """--include-vault-settings: planned with 'irreversible', written through Vaults_Update (PATCH) with only
    the changed properties, verified, journaled; rollback turns off only enabledForDiskEncryption."""

    def setUp(self):
        self.emu = FixEmulator()

    def tearDown(self):
        self.emu.stop()

    def test_plan_apply_idempotent_rollback(self):
        emu = self.emu
        names = ["kv-nw-dev-neu", "kv-nw-apps-weu"]
        args = ["--vault", names[0], "--vault", names[1]]
        before = emu.vaults()
        # Without the flag: nothing of the settings is planned or written.
        r = kvaudit(emu, ["fix", "-q"] + args + ["--apply", "--yes", "--journal", "plain.journal"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("PATCH", r.stdout)
        self.assertEqual([w for w in emu.writes() if w["method"] == "PATCH"], [])
        for n in names:
            self.assertEqual({k: emu.vault(n)["properties"].get(k) for k in SETTINGS},
                             {k: before[n]["properties"].get(k) for k in SETTINGS}, n)
        granted = emu.vaults()
        # The plan says which settings are irreversible, and writes nothing.
        emu.clear()
        r = kvaudit(emu, ["fix", "-q", "--include-vault-settings", "--out", "plan.json"] + args)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        dev = r.stdout.split("vault kv-nw-dev-neu ")[1].split("\nvault ")[0]
        self.assertIn("enabledForDiskEncryption=true enablePurgeProtection=true (IRREVERSIBLE)", dev)
        self.assertIn("rollback cannot undo", dev)
        self.assertEqual(emu.writes(), [])
        plan = {p["name"]: p for p in json.load(open(os.path.join(emu.dir, "plan.json")))["plan"]}
        self.assertEqual(plan["kv-nw-apps-weu"]["settings"], {"enablePurgeProtection": True})
        # Apply: one PATCH per vault, with only the changed properties; nothing else in the vault moves.
        emu.clear()
        r = kvaudit(emu, ["fix", "-q", "--include-vault-settings", "--apply", "--yes", "--journal", "s.journal",
                          "--out", "run.json"] + args)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        patches = [w for w in emu.writes() if w["method"] == "PATCH"]
        self.assertEqual(sorted(w["path"].lower() for w in patches), sorted("/arm" + vault_id(n).lower() for n in names))
        self.assertTrue(all(w["query"] == "api-version=2024-11-01" for w in patches), patches)
        self.assertEqual([w for w in emu.writes() if w["method"] != "PATCH"], [])
        after = emu.vaults()
        self.assertIs(after["kv-nw-dev-neu"]["properties"]["enabledForDiskEncryption"], True)
        self.assertIs(after["kv-nw-dev-neu"]["properties"]["enablePurgeProtection"], True)
        self.assertIs(after["kv-nw-apps-weu"]["properties"]["enablePurgeProtection"], True)
        self.assertNotIn("enableSoftDelete", set(after["kv-nw-dev-neu"]["properties"]) -
                         set(granted["kv-nw-dev-neu"]["properties"]))
        for n in names:
            self.assertEqual(without(after[n], SETTINGS), without(granted[n], SETTINGS), n)
        for n in VAULTS:
            if n not in names:
                self.assertEqual(after[n], granted[n], n)
        # The journal: prior settings, the request (only what changes), what cannot be undone, the result.
        lines = [json.loads(x) for x in open(os.path.join(emu.dir, "s.journal"))]
        intents = {x["vault"].rsplit("/", 1)[1]: x for x in lines if x["type"] == "settings" and x["phase"] == "intent"}
        self.assertEqual(intents["kv-nw-dev-neu"]["request"],
                         {"properties": {"enabledForDiskEncryption": True, "enablePurgeProtection": True}})
        self.assertEqual(intents["kv-nw-dev-neu"]["prior"],
                         {"enabledForDiskEncryption": None, "enablePurgeProtection": None})
        self.assertEqual(intents["kv-nw-dev-neu"]["irreversible"], ["enablePurgeProtection"])
        self.assertEqual(intents["kv-nw-apps-weu"]["request"], {"properties": {"enablePurgeProtection": True}})
        results = [x for x in lines if x["type"] == "settings" and x["phase"] == "result"]
        self.assertEqual(len(results), 2)
        self.assertTrue(all(x["ok"] and x["verified"] for x in results), results)
        run = {x["name"]: x for x in json.load(open(os.path.join(emu.dir, "run.json")))["results"]}
        self.assertEqual(run["kv-nw-dev-neu"]["status"], "applied")
        self.assertEqual(run["kv-nw-dev-neu"]["settings"]["after"],
                         {"enabledForDiskEncryption": True, "enablePurgeProtection": True})
        # A second run writes nothing.
        emu.clear()
        r = kvaudit(emu, ["fix", "-q", "--include-vault-settings", "--estate", os.path.join(ARGS["source"],
                          "examples/demo-estate.json"), "--apply", "--yes", "--journal", "s2.journal"] + args)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(emu.writes(), [])
        self.assertIn("vault kv-nw-dev-neu: already compliant", r.stdout)
        # Rollback: disk encryption off again; purge protection reported as not reversible, not a failure.
        emu.clear()
        r = kvaudit(emu, ["rollback", "-q", "s.journal", "--yes", "--out", "rb.json"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("vault kv-nw-dev-neu: enablePurgeProtection=true not reversible", r.stdout)
        self.assertIn("vault kv-nw-apps-weu: enablePurgeProtection=true not reversible", r.stdout)
        restored = emu.vaults()
        self.assertIs(restored["kv-nw-dev-neu"]["properties"]["enabledForDiskEncryption"], False)
        self.assertIs(restored["kv-nw-dev-neu"]["properties"]["enablePurgeProtection"], True)
        patches = [w for w in emu.writes() if w["method"] == "PATCH"]
        self.assertEqual([w["path"].lower() for w in patches], ["/arm" + vault_id("kv-nw-dev-neu").lower()])
        rb = {x["name"]: x for x in json.load(open(os.path.join(emu.dir, "rb.json")))["results"]}
        self.assertEqual(rb["kv-nw-dev-neu"]["status"], "rolled-back")
        self.assertEqual(rb["kv-nw-apps-weu"]["status"], "not-reversible")
        self.assertTrue(any(json.loads(x)["type"] == "undo-settings" for x in open(os.path.join(emu.dir, "s.journal"))))

    def test_emulator_refuses_to_turn_off_purge_protection_or_soft_delete(self):
        emu = self.emu
        vid = vault_id("kv-nw-prod-weu")
        before = emu.vault("kv-nw-prod-weu")
        status, body = arm_call(emu, "PATCH", vid + "?api-version=2024-11-01",
                                {"properties": {"enablePurgeProtection": False}})
        self.assertEqual(status, 400)
        self.assertEqual(body, {"error": {"code": "BadRequest", "message": "The property \"enablePurgeProtection\" "
                                          "cannot be set to false. Enabling the purge protection for a vault is an "
                                          "irreversible action."}})
        status, body = arm_call(emu, "PATCH", vid + "?api-version=2024-11-01", {"properties": {"enableSoftDelete": False}})
        self.assertEqual((status, body["error"]["code"]), (400, "BadRequest"))
        self.assertEqual(emu.vault("kv-nw-prod-weu"), before)
        # Only the given properties change; the answer is the whole vault.
        status, body = arm_call(emu, "PATCH", vid + "?api-version=2024-11-01", {"properties": {"enabledForDeployment": True}})
        self.assertEqual(status, 200)
        self.assertIs(body["properties"]["enabledForDeployment"], True)
        self.assertEqual(without(emu.vault("kv-nw-prod-weu"), ["enabledForDeployment"]),
                         without(before, ["enabledForDeployment"]))
        status, body = arm_call(emu, "PATCH", vid + "?api-version=2023-07-01", {"properties": {}})
        self.assertEqual((status, body["error"]["code"]), (400, "InvalidApiVersionParameter"))


class PermissionPrecheck(unittest.TestCase):
    """Before writing, the caller's permissions on the vault (Permissions_ListForResource) are checked; a vault
    it may not write is failed with the missing action, the others go on, exit 4."""

    def test_missing_actions_are_reported_per_vault_and_nothing_is_written_there(self):
        emu = FixEmulator(overlay={"emulator": {"access": [
            # Logistics: may read everything and assign roles, but not write access policies.
            {"objectId": SCANNER_LOGISTICS, "actions": ["*/read", "Microsoft.Authorization/roleAssignments/write"]},
            # Traders: everything on key vaults except the vault itself (settings).
            {"objectId": SCANNER_TRADERS, "actions": ["*"], "notActions": ["Microsoft.KeyVault/vaults/write"]}]}})
        try:
            before = emu.vaults()
            # The emulator's permission list is the role model it enforces.
            status, body = arm_call(emu, "GET", vault_id("kv-nw-dev-neu") +
                                    "/providers/Microsoft.Authorization/permissions?api-version=2022-04-01")
            self.assertEqual(status, 200)
            self.assertEqual(body["value"], [{"actions": ["*"], "notActions": ["Microsoft.KeyVault/vaults/write"],
                                              "dataActions": [], "notDataActions": []}])
            r = kvaudit(emu, ["fix", "-q", "--include-vault-settings", "--apply", "--yes", "--journal", "p.journal",
                              "--out", "run.json", "--vault", "kv-nwlog-ops-eus", "--vault", "kv-nwlog-data-eus",
                              "--vault", "kv-nwlog-rbac-eus", "--vault", "kv-nw-dev-neu", "--vault", "kv-nw-shared-weu"])
            self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
            run = {x["name"]: x for x in json.load(open(os.path.join(emu.dir, "run.json")))["results"]}
            for n in ("kv-nwlog-ops-eus", "kv-nwlog-data-eus"):
                self.assertEqual(run[n]["status"], "failed", n)
                self.assertIn("Microsoft.KeyVault/vaults/accessPolicies/write", run[n]["error"])
                self.assertEqual(emu.vault(n), before[n], n)
            self.assertIn("vault kv-nwlog-ops-eus: not changed: the caller may not perform "
                          "Microsoft.KeyVault/vaults/accessPolicies/write", r.stderr)
            self.assertEqual(run["kv-nwlog-rbac-eus"]["status"], "applied")
            self.assertEqual(run["kv-nw-shared-weu"]["status"], "applied")
            # dev-neu: no grant to make; its settings need vaults/write, which notActions take away.
            self.assertEqual(run["kv-nw-dev-neu"]["status"], "failed")
            self.assertIn("Microsoft.KeyVault/vaults/write", run["kv-nw-dev-neu"]["settings"]["error"])
            self.assertEqual(emu.vault("kv-nw-dev-neu"), before["kv-nw-dev-neu"])
            # Nothing was sent to, or journaled for, a vault the caller may not write.
            for w in emu.writes():
                self.assertNotRegex(w["path"], "kv-nwlog-ops-eus|kv-nwlog-data-eus|kv-nw-dev-neu")
            lines = [json.loads(x) for x in open(os.path.join(emu.dir, "p.journal"))]
            self.assertEqual(sorted(x["vault"].rsplit("/", 1)[1] for x in lines if x["phase"] == "intent"),
                             ["kv-nw-shared-weu", "kv-nwlog-rbac-eus"])
        finally:
            emu.stop()

    def test_a_guest_is_told_backup_will_not_add_it(self):
        emu = FixEmulator(overlay={"emulator": {"access": [{"objectId": AVA_GUEST_LOGISTICS, "actions": ["*/read"]}]}})
        try:
            before = emu.vault("kv-nwlog-ops-eus")
            r = kvaudit(emu, ["fix", "-q", "--vault", "kv-nwlog-ops-eus", "--apply", "--yes", "--journal", "g.journal"],
                        auth="cli")
            self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
            self.assertIn("you are a guest", r.stdout)
            self.assertIn("Microsoft.KeyVault/vaults/accessPolicies/write", r.stderr)
            self.assertIn("guest in the vault's tenant", r.stderr)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
            self.assertEqual(emu.vault("kv-nwlog-ops-eus"), before)
            self.assertEqual(emu.writes(), [])
        finally:
            emu.stop()


class Suppressions(unittest.TestCase):
    SUPP = {"kind": "kvaudit.suppressions", "version": 1, "suppressions": [
        {"rule": "KVA-BKP-002", "resource": "/vaults/kv-nwlog-data-eus$", "reason": "KEK backed up elsewhere",
         "owner": "sec@northwind.example", "expires": "2099-12-31"},
        {"rule": "KVA-BKP-004", "resource": "/vaults/kv-nwlog-rbac-eus$", "reason": "reports are rebuilt, not restored",
         "owner": "ops@northwind.example", "expires": "2099-12-31"}]}

    def setUp(self):
        self.emu = FixEmulator()
        with open(os.path.join(self.emu.dir, "supp.json"), "w") as f:
            json.dump(self.SUPP, f)
        with open(os.path.join(self.emu.dir, "kvaudit.config.json"), "w") as f:
            json.dump({"kind": "kvaudit.config", "version": 1, "suppressions": "supp.json"}, f)

    def tearDown(self):
        self.emu.stop()

    def test_suppressed_findings_plan_no_change_and_are_listed(self):
        emu = self.emu
        vaults = ["--vault", "kv-nwlog-data-eus", "--vault", "kv-nwlog-rbac-eus"]
        r = kvaudit(emu, ["fix", "-q", "--suppressions", "supp.json"] + vaults)
        self.assertEqual(r.returncode, 0, r.stderr)
        data = r.stdout.split("vault kv-nwlog-data-eus ")[1].split("\nvault ")[0]
        self.assertIn("secrets get, list, backup", data)
        self.assertNotIn("keys", data.split("change:")[1].split("\n")[0])
        self.assertIn("suppressed: KVA-BKP-002 (vm nwlog-wms01), no change planned for it (KEK backed up elsewhere; "
                      "owner sec@northwind.example; expires 2099-12-31)", data)
        rbac = r.stdout.split("vault kv-nwlog-rbac-eus ")[1].split("\nvault ")[0]
        self.assertIn("suppressed: KVA-BKP-004", rbac)
        self.assertIn("no change: every fixable finding on this vault is suppressed", rbac)
        # The config file's suppressions work the same.
        r2 = kvaudit(emu, ["fix", "-q", "--config", "kvaudit.config.json"] + vaults)
        self.assertEqual((r2.returncode, r2.stdout), (0, r.stdout), r2.stderr)
        before, roles_before = emu.vaults(), emu.role_assignments()
        r = kvaudit(emu, ["fix", "-q", "--config", "kvaudit.config.json", "--apply", "--yes", "--journal", "j.journal",
                          "--out", "run.json"] + vaults)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("vault kv-nwlog-rbac-eus: suppressed findings only, nothing changed", r.stdout)
        data = entry(emu.vault("kv-nwlog-data-eus"), BMS_TRADERS)
        self.assertEqual(perms(data, "secrets"), sorted(TEMPLATE))
        self.assertEqual(perms(data, "keys"), perms(entry(before["kv-nwlog-data-eus"], BMS_TRADERS), "keys"))
        self.assertEqual(emu.role_assignments(), roles_before)
        run = {x["name"]: x for x in json.load(open(os.path.join(emu.dir, "run.json")))["results"]}
        self.assertEqual(run["kv-nwlog-rbac-eus"]["status"], "suppressed")
        self.assertEqual(run["kv-nwlog-data-eus"]["status"], "applied")


class RbacRecheck(unittest.TestCase):
    """The live re-check of an RBAC vault recognises any role of Backup Management Service at or above the vault
    whose data actions cover what Backup needs (not only the planned role); the snapshot is stale here."""

    RBAC_VAULT = "/subscriptions/6a0f9e2c-4b75-4e13-8d29-c5b1f7a3e6d8/resourceGroups/rg-nwlog-rpt-eus/providers/" \
                 "Microsoft.KeyVault/vaults/kv-nwlog-rbac-eus"
    CUSTOM = "9d3e6a21-7c48-4b5f-a0e9-2f1d8c6b4a73"

    def run_with(self, role_assignments, role_definitions=()):
        d = demo()
        emu = FixEmulator(overlay={"roleAssignments": d["roleAssignments"] + list(role_assignments),
                                   "roleDefinitions": d.get("roleDefinitions", []) + list(role_definitions)})
        try:
            r = kvaudit(emu, ["fix", "-q", "--estate", os.path.join(ARGS["source"], "examples/demo-estate.json"),
                              "--vault", "kv-nwlog-rbac-eus", "--apply", "--yes", "--journal", "j.journal"])
            return r, [w for w in emu.writes() if w["method"] == "PUT"]
        finally:
            emu.stop()

    def assignment(self, scope, role, name):
        return {"id": scope + "/providers/Microsoft.Authorization/roleAssignments/" + name, "name": name,
                "type": "Microsoft.Authorization/roleAssignments",
                "properties": {"roleDefinitionId": "/subscriptions/%s/providers/Microsoft.Authorization/"
                                                   "roleDefinitions/%s" % (LOGISTICS_SUB, role),
                               "principalId": BMS_LOGISTICS, "principalType": "ServicePrincipal", "scope": scope}}

    def custom_role(self, not_data_actions):
        return {"id": "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s" % (LOGISTICS_SUB,
                                                                                                  self.CUSTOM),
                "name": self.CUSTOM, "type": "Microsoft.Authorization/roleDefinitions",
                "properties": {"roleName": "Backup key reader", "type": "CustomRole",
                               "assignableScopes": ["/subscriptions/" + LOGISTICS_SUB],
                               "permissions": [{"actions": [], "notActions": [],
                                                "dataActions": ["Microsoft.KeyVault/vaults/secrets/*"],
                                                "notDataActions": not_data_actions}]}}

    def test_a_builtin_role_at_the_resource_group_counts(self):
        rg = self.RBAC_VAULT.split("/providers/")[0]
        r, puts = self.run_with([self.assignment(rg, SECRETS_OFFICER, "0b5c1f2e-8d3a-4e6b-9c7f-1a2b3c4d5e6f")])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("vault kv-nwlog-rbac-eus: already compliant", r.stdout)
        self.assertEqual(puts, [])

    def test_a_custom_role_at_the_subscription_counts_unless_it_takes_backup_away(self):
        sub = "/subscriptions/" + LOGISTICS_SUB
        ra = self.assignment(sub, self.CUSTOM, "6f4e2d1c-0b9a-4876-a5e4-d3c2b1a09f8e")
        r, puts = self.run_with([ra], [self.custom_role([])])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("vault kv-nwlog-rbac-eus: already compliant", r.stdout)
        self.assertEqual(puts, [])
        r, puts = self.run_with([ra], [self.custom_role(["Microsoft.KeyVault/vaults/secrets/backup/action"])])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("vault kv-nwlog-rbac-eus: applied role assignment", r.stdout)
        self.assertEqual(len(puts), 1)
        self.assertIn("/roleAssignments/", puts[0]["path"])


class JournalInput(unittest.TestCase):
    def test_a_journal_id_that_is_not_an_arm_path_is_never_sent(self):
        emu = FixEmulator()
        try:
            bad = vault_id("kv-nw-dev-neu") + "/../../../../providers/Microsoft.Authorization/roleAssignments/x?a=b"
            with open(os.path.join(emu.dir, "bad.journal"), "w") as f:
                f.write(json.dumps({"run": "r", "type": "settings", "phase": "intent", "vault": bad,
                                    "prior": {"enabledForDiskEncryption": None},
                                    "request": {"properties": {"enabledForDiskEncryption": True}}}) + "\n")
            os.chmod(os.path.join(emu.dir, "bad.journal"), 0o600)
            emu.clear()
            r = kvaudit(emu, ["rollback", "-q", "bad.journal", "--yes"])
            self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
            self.assertIn("not a valid ARM resource ID", r.stderr)
            self.assertEqual([x for x in emu.requests() if x["surface"] == "arm"], [])
        finally:
            emu.stop()


def kvaudit_file_limit(emu, args, limit):
    """kvaudit() with RLIMIT_FSIZE at limit bytes: a write past it fails with EFBIG (SIGXFSZ ignored),
    so a journal append fails the way a full disk makes it fail."""
    import resource
    import signal
    import subprocess

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    cmd = [ARGS["kvaudit"]] + args[:1] + ["--cloud", emu.cloud, "--auth", "env"] + args[1:]
    return subprocess.run(cmd, env=emu.env(), capture_output=True, text=True, timeout=120, cwd=emu.dir,
                          stdin=subprocess.DEVNULL, preexec_fn=limited, restore_signals=False)


class JournalFirst(unittest.TestCase):
    """A write whose intent cannot be journaled is never sent: the grant, the settings PATCH and both undos."""

    def test_an_unwritable_journal_sends_nothing_in_fix_or_rollback(self):
        emu = FixEmulator()
        try:
            grant, settings = "kv-nwlog-data-eus", "kv-nw-dev-neu"   # a grant; disk encryption (+ purge protection)
            args = ["--vault", grant, "--vault", settings, "--include-vault-settings", "--apply", "--yes",
                    "--journal", "j.journal"]
            before = emu.vaults()
            emu.clear()
            r = kvaudit_file_limit(emu, ["fix", "-q"] + args, 0)
            self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
            self.assertIn(f"vault {grant}: not changed: cannot write the journal", r.stderr)
            self.assertIn(f"vault {settings}: settings not changed: cannot write the journal", r.stderr)
            self.assertEqual(emu.writes(), [])
            self.assertEqual(emu.vaults(), before)
            # Applied for real: a grant and a settings PATCH, each an intent then a verified result.
            r = kvaudit(emu, ["fix", "-q"] + args)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            path = os.path.join(emu.dir, "j.journal")
            lines = [json.loads(x) for x in open(path)]
            self.assertEqual([(x["type"], x["phase"]) for x in lines],
                             [("grant", "intent"), ("grant", "result"), ("settings", "intent"), ("settings", "result")])
            self.assertTrue(all(x["ok"] and x["verified"] for x in lines if x["phase"] == "result"), lines)
            applied = emu.vaults()
            self.assertIs(applied[settings]["properties"]["enabledForDiskEncryption"], True)
            # A rollback that cannot append to the journal removes nothing and turns nothing off.
            size = os.path.getsize(path)
            emu.clear()
            r = kvaudit_file_limit(emu, ["rollback", "-q", "j.journal", "--yes"], size)
            self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
            for n in (grant, settings):
                self.assertIn(f"vault {n}: not changed: cannot write the journal", r.stderr)
            self.assertEqual(emu.writes(), [])
            self.assertEqual(emu.vaults(), applied)
            self.assertEqual(os.path.getsize(path), size)
            # Then it can: the grant is gone again and disk encryption off, each undo journaled.
            r = kvaudit(emu, ["rollback", "-q", "j.journal", "--yes"])
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual(policies(emu.vault(grant)), policies(before[grant]))
            self.assertIs(emu.vault(settings)["properties"]["enabledForDiskEncryption"], False)
            undos = [(x["type"], x["phase"], x.get("ok")) for x in map(json.loads, open(path))
                     if x["type"].startswith("undo-")]
            self.assertEqual(undos, [("undo-settings", "intent", None), ("undo-settings", "result", True),
                                     ("undo-grant", "intent", None), ("undo-grant", "result", True)])
        finally:
            emu.stop()

    def test_a_full_disk_leaves_no_torn_line_and_a_torn_last_line_is_named(self):
        """docs/fix.md, "A damaged journal": an append cut short by a full disk is removed again; a last
        line torn by a crash (or an older kvaudit) is named, ignored, and removed before appending."""
        emu = FixEmulator()
        try:
            grant = "kv-nwlog-data-eus"
            before = emu.vaults()
            r = kvaudit(emu, ["fix", "-q", "--vault", grant, "--apply", "--yes", "--journal", "j.journal"])
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            path = os.path.join(emu.dir, "j.journal")
            size = os.path.getsize(path)
            applied = emu.vaults()
            # Room for 40 bytes of the undo's intent: a short write, then EFBIG, like a full disk.
            emu.clear()
            r = kvaudit_file_limit(emu, ["rollback", "-q", "j.journal", "--yes"], size + 40)
            self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
            self.assertIn(f"vault {grant}: not changed: cannot write the journal", r.stderr)
            self.assertEqual(emu.writes(), [])
            self.assertEqual(emu.vaults(), applied)
            self.assertEqual(os.path.getsize(path), size)          # cut back: no torn line
            # A crash mid-append (or an older kvaudit on a full disk) left a torn third line.
            with open(path, "a") as f:
                f.write('{"run":"x","type":"grant","phase":"int')
            r = kvaudit(emu, ["rollback", "-q", "j.journal", "--yes"])
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("j.journal: line 3 is incomplete", r.stderr)
            self.assertIn("its incomplete last line (38 bytes", r.stderr)
            self.assertEqual(policies(emu.vault(grant)), policies(before[grant]))
            lines = [json.loads(x) for x in open(path)]             # every line whole again
            self.assertEqual([(x["type"], x["phase"]) for x in lines],
                             [("grant", "intent"), ("grant", "result"), ("undo-grant", "intent"),
                              ("undo-grant", "result")])
        finally:
            emu.stop()

class JournalLock(unittest.TestCase):
    """One fix --apply or rollback per journal: a second is refused (exit 2, docs/fix.md) before it reads or
    writes anything, while another process holds the journal's flock; rollback takes cloud and auth from
    --config as fix does."""

    def test_a_held_journal_refuses_fix_and_rollback(self):
        import fcntl
        import subprocess

        emu = FixEmulator()
        try:
            grant = "kv-nwlog-data-eus"
            path = os.path.join(emu.dir, "j.journal")
            before = emu.vaults()
            apply = ["fix", "-q", "--vault", grant, "--apply", "--yes", "--journal", "j.journal"]
            held = open(path, "a")
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            emu.clear()
            r = kvaudit(emu, apply)
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
            lines = [x for x in r.stderr.splitlines() if x.strip()]
            self.assertEqual(len(lines), 1, r.stderr)
            self.assertIn("the journal 'j.journal' is held by another kvaudit", lines[0])
            # Refused before the live read (docs/fix.md): not one request to Azure, not only no write.
            self.assertEqual(emu.requests(), [])
            self.assertEqual(emu.vaults(), before)
            self.assertEqual(os.path.getsize(path), 0)
            # Released (the process ended, or it closed the file): the same run goes through.
            held.close()
            # An apply with nothing to change leaves no journal it made behind (it held one from its start).
            r = kvaudit(emu, ["fix", "-q", "--vault", "no-such-vault", "--apply", "--yes", "--journal", "n.journal"])
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("nothing to change", r.stdout)
            self.assertFalse(os.path.exists(os.path.join(emu.dir, "n.journal")))
            r = kvaudit(emu, apply)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            applied = emu.vaults()
            self.assertNotEqual(policies(applied[grant]), policies(before[grant]))
            size = os.path.getsize(path)
            # A rollback while a fix holds the journal: refused, nothing read from Azure or sent.
            held = open(path, "a")
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            emu.clear()
            r = kvaudit(emu, ["rollback", "-q", "j.journal", "--yes"])
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
            self.assertIn("held by another kvaudit", r.stderr)
            self.assertEqual([x for x in emu.requests() if x["surface"] == "arm"], [])
            self.assertEqual(emu.vaults(), applied)
            self.assertEqual(os.path.getsize(path), size)
            held.close()
            # Rollback with the connection from a config file only (no --cloud, no --auth on the line).
            cfg = os.path.join(emu.dir, "rollback.config.json")
            with open(cfg, "w") as f:
                json.dump({"kind": "kvaudit.config", "version": 1, "cloud": emu.cloud, "auth": "env",
                           "engine": "arm", "failOn": "high"}, f)
            r = subprocess.run([ARGS["kvaudit"], "rollback", "-q", "j.journal", "--yes", "--config", cfg],
                               env=emu.env(), capture_output=True, text=True, timeout=120, cwd=emu.dir,
                               stdin=subprocess.DEVNULL)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual(policies(emu.vault(grant)), policies(before[grant]))
            # ... and a flag still wins over it: a cloud that does not exist is refused before any read.
            r = subprocess.run([ARGS["kvaudit"], "rollback", "-q", "j.journal", "--yes", "--config", cfg,
                                "--cloud", "NoSuchCloud"], env=emu.env(), capture_output=True, text=True,
                               timeout=120, cwd=emu.dir, stdin=subprocess.DEVNULL)
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
            self.assertIn("NoSuchCloud", r.stderr)
        finally:
            emu.stop()


def main():
    with open(os.path.join(os.path.abspath(sys.argv[sys.argv.index("--source") + 1]), "examples/demo-estate.json")) as f:
        VAULTS.extend(v["name"] for v in json.load(f)["vaults"])
    return run_main(__name__)


if __name__ == "__main__":
    sys.exit(main())
