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


def main():
    with open(os.path.join(os.path.abspath(sys.argv[sys.argv.index("--source") + 1]), "examples/demo-estate.json")) as f:
        VAULTS.extend(v["name"] for v in json.load(f)["vaults"])
    return run_main(__name__)


if __name__ == "__main__":
    sys.exit(main())
