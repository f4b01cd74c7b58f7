#!/usr/bin/env python3
"""
End-to-end tests of Azure Backup's evidence (KVA-EVD-001..006, docs/rules.md): the backup jobs,
backup policies, Activity Log and Graph look-ups kvaudit reads, the rules on them, and the
"azureBackup" verdict next to the key vault permission findings.

    python3 tests/e2e/test_evidence.py --kvaudit build/kvaudit --source .  [test names]

Offline: the real binary on examples/demo-estate.json and on copies changed one fact at a time.
Live: the real binary against the Azure emulator (tests/emulator), which serves the same jobs
(with paging), policies, Activity Log events and Graph users in Azure's shapes.
"""
import copy
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emulator_helper import ARGS, Emulator, kvaudit, main  # noqa: E402

S_NW = "8b2e4f71-3c9a-4d6e-b1f0-7a5c2e9d4b13"
S_LOG = "6a0f9e2c-4b75-4e13-8d29-c5b1f7a3e6d8"
T_NW = "3f6b2c8e-5a41-4d7f-9c2e-8b1a7d4e6f20"
T_LOG = "9c1d4e7a-2b36-4f58-a1c9-5e0f3b7d2a84"
RSV_LOG = ("/subscriptions/%s/resourceGroups/rg-nwlog-backup-eus/providers/Microsoft.RecoveryServices/vaults/"
           "rsv-nwlog-eus" % S_LOG)
SCANNER_IN_LOG = "b5d9e2a7-40c6-4f18-8e3b-c1a7f5d0e924"   # kvaudit-scanner's service principal in Logistics
EVD = ["KVA-EVD-001", "KVA-EVD-002", "KVA-EVD-003", "KVA-EVD-004", "KVA-EVD-005", "KVA-EVD-006"]
PERMISSION_RULES = ("KVA-BKP-001", "KVA-BKP-002", "KVA-BKP-004")


def demo():
    with open(os.path.join(ARGS["source"], "examples/demo-estate.json")) as f:
        return json.load(f)


def audit(estate, *extra):
    """Audits an estate (a path or a dict); returns (exit code, report or None, stderr)."""
    d = tempfile.mkdtemp(prefix="kvaudit-evd-")
    if isinstance(estate, dict):
        path = os.path.join(d, "estate.json")
        with open(path, "w") as f:
            json.dump(estate, f)
        estate = path
    out = os.path.join(d, "report.json")
    r = subprocess.run([ARGS["kvaudit"], "audit", estate, "--include-pass", "--include-skipped", "--out", out, "-q"]
                       + list(extra),
                       capture_output=True, text=True, timeout=60)
    rep = None
    if os.path.exists(out):
        with open(out) as f:
            rep = json.load(f)
    return r.returncode, rep, r.stderr


def one(rep, rule, vm, vault=None):
    got = [f for f in rep["findings"] if f["rule"] == rule and f["vmName"] == vm
           and (vault is None or f["vaultName"] == vault)]
    assert len(got) == 1, (rule, vm, vault, [(g["rule"], g["status"]) for g in got])
    return got[0]


def evd_statuses(rep):
    return {(f["rule"], f["vmName"]): f["status"] for f in rep["findings"] if f["rule"].startswith("KVA-EVD-")}


class Demo(unittest.TestCase):
    """The bundled demo: every evidence rule fails and passes somewhere, with Azure's words as evidence."""

    @classmethod
    def setUpClass(cls):
        cls.rc, cls.rep, cls.err = audit(os.path.join(ARGS["source"], "examples/demo-estate.json"))

    def test_the_demo_audit_is_complete(self):
        self.assertEqual(self.rc, 1, self.err)
        self.assertTrue(self.rep["scan"]["complete"])

    def test_every_evidence_rule_fails_and_passes(self):
        for rule in EVD:
            with self.subTest(rule=rule):
                st = {f["status"] for f in self.rep["findings"] if f["rule"] == rule}
                self.assertIn("fail", st)
                self.assertIn("pass", st)

    def test_permission_error_job_carries_id_time_and_azure_text(self):
        f = one(self.rep, "KVA-EVD-001", "nwlog-tms01")
        self.assertEqual(f["severity"], "critical")
        self.assertEqual(f["status"], "fail")
        ev = f["evidence"]
        # Three nightly failures, one of them spelled in the singular (UserErrorKeyvaultPermissionNotConfigured).
        self.assertEqual(ev["vm.backup.jobs.keyVaultPermission.count"], 3)
        self.assertRegex(ev["vm.backup.jobs.keyVaultPermission.jobId"],
                         r"(?i)^/subscriptions/%s/.*/vaults/rsv-nwlog-eus/backupJobs/[0-9a-f-]{36}$" % S_LOG)
        self.assertEqual(ev["vm.backup.jobs.keyVaultPermission.time"], "2026-11-28T01:32:06.284913Z")
        self.assertEqual(ev["vm.backup.jobs.keyVaultPermission.errorCode"], "UserErrorKeyVaultPermissionsNotConfigured")
        self.assertIn("sufficient permissions to the key vault", ev["vm.backup.jobs.keyVaultPermission.errorText"])
        for k in ("jobId", "time", "errorCode"):
            self.assertIn(ev["vm.backup.jobs.keyVaultPermission." + k], f["message"])

    def test_every_spelling_and_a_numeric_code_are_recognised(self):
        ev = one(self.rep, "KVA-EVD-001", "nw-web01")["evidence"]
        # The newest job spells it UserErrorKeyvaultPermissionsNotConfigured; the older one has only a numeric
        # errorCode (the spec's type) and Microsoft's documented text.
        self.assertEqual(ev["vm.backup.jobs.keyVaultPermission.count"], 2)
        self.assertEqual(ev["vm.backup.jobs.keyVaultPermission.errorCode"], "UserErrorKeyvaultPermissionsNotConfigured")

    def test_disk_exclusion_and_no_network(self):
        f = one(self.rep, "KVA-EVD-002", "nw-web02")
        self.assertEqual(f["status"], "fail")
        self.assertEqual(f["evidence"]["vm.backup.jobs.diskExclusion.errorCode"],
                         "UserErrorEncryptedVmNotSupportedWithDiskEx")
        f = one(self.rep, "KVA-EVD-003", "nw-ftp01")
        self.assertEqual(f["status"], "fail")
        self.assertIn("no network connectivity", f["evidence"]["vm.backup.jobs.noNetwork.errorText"])

    def test_overdue_backup_against_the_policy_schedule(self):
        f = one(self.rep, "KVA-EVD-004", "nw-dev-build01")
        self.assertEqual(f["status"], "fail")
        self.assertIn("106.1 hours", f["message"])
        self.assertIn("48 hours", f["message"])
        self.assertEqual(one(self.rep, "KVA-EVD-004", "nw-erp-app01")["status"], "pass")

    def test_confirmed_and_unconfirmed_backup_permission_findings(self):
        confirmed = one(self.rep, "KVA-BKP-001", "nwlog-tms01", "kv-nwlog-ops-eus")
        self.assertEqual(confirmed["status"], "fail")
        self.assertEqual(confirmed["azureBackup"]["status"], "confirmed")
        self.assertEqual(confirmed["azureBackup"]["permissionErrorJobs"], 3)
        self.assertEqual(confirmed["azureBackup"]["errorCode"], "UserErrorKeyVaultPermissionsNotConfigured")
        unconfirmed = one(self.rep, "KVA-BKP-002", "nw-erp-db01", "kv-nw-shared-weu")
        self.assertEqual(unconfirmed["status"], "fail")
        self.assertEqual(unconfirmed["azureBackup"]["status"], "not-seen")
        self.assertIsNone(unconfirmed["azureBackup"]["jobId"])

    def test_a_passing_check_contradicted_by_azure_backup_is_a_finding(self):
        bkp = one(self.rep, "KVA-BKP-001", "nw-web01", "kv-nw-apps-weu")
        self.assertEqual(bkp["status"], "pass")
        self.assertEqual(bkp["azureBackup"]["status"], "contradicted")
        f = one(self.rep, "KVA-EVD-005", "nw-web01")
        self.assertEqual(f["status"], "fail")
        # The vault was changed at 09:41 on scan day, after the 01:02 failure: propagation delay or fixed since.
        self.assertIn("changedAfterFailure: true", f["message"])
        self.assertIn("wrong principal", f["message"])
        self.assertIn("did not see", f["message"])

    def test_guest_who_enabled_backup_without_the_grant(self):
        f = one(self.rep, "KVA-EVD-006", "nwlog-tms01")
        self.assertEqual(f["status"], "fail")
        self.assertEqual(f["evidence"]["vm.backup.enabledBy.userType"], "Guest")
        self.assertEqual(f["evidence"]["vm.backup.enabledBy.name"], "ava.lindqvist@northwindtraders.com")
        self.assertIn("a Guest of tenant " + T_LOG, f["message"])
        self.assertIn("kv-nwlog-ops-eus", f["message"])
        # A Guest who enabled backup after the grant was made by hand passes; a Member's backup is not judged.
        self.assertEqual(one(self.rep, "KVA-EVD-006", "nw-web02")["status"], "pass")
        self.assertEqual([f for f in self.rep["findings"] if f["rule"] == "KVA-EVD-006" and f["vmName"] == "nwlog-rpt01"], [])

    def test_html_and_markdown_show_azure_backup_next_to_the_finding(self):
        d = tempfile.mkdtemp(prefix="kvaudit-evd-")
        r = subprocess.run([ARGS["kvaudit"], "audit", os.path.join(ARGS["source"], "examples/demo-estate.json"),
                            "--format", "html,md", "--out", d, "-q"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        html = open(next(os.path.join(d, n) for n in os.listdir(d) if n.endswith(".html"))).read()
        md = open(next(os.path.join(d, n) for n in os.listdir(d) if n.endswith(".md"))).read()
        self.assertRegex(html, r'<p class="azure-backup"><b>confirmed by Azure Backup: backup job [0-9a-f-]{36} failed '
                               r'at 2026-11-28T01:32:06.284913Z with UserErrorKeyVaultPermissionsNotConfigured</b></p>')
        self.assertIn("not confirmed by Azure Backup", html)
        row = next(l for l in md.splitlines() if "KVA-BKP-001" in l and "nwlog-tms01" in l)
        self.assertIn("confirmed by Azure Backup", row)


class Changed(unittest.TestCase):
    """Copies of the demo with one thing changed."""

    def test_lists_not_collected_make_the_rules_skipped(self):
        d = demo()
        for k in ("backupJobs", "backupJobsSince", "activityLog", "principals", "backupPolicies"):
            del d[k]
        rc, rep, err = audit(d)
        self.assertEqual(rc, 1, err)
        self.assertTrue(rep["scan"]["complete"])
        st = evd_statuses(rep)
        self.assertTrue(st)
        # EVD-005 and EVD-006 need jobs or the Activity Log in their conditions: skipped, never pass or fail.
        self.assertEqual({s for (r, vm), s in st.items() if r != "KVA-EVD-006"}, {"skipped"})
        self.assertEqual(one(rep, "KVA-BKP-001", "nwlog-tms01")["azureBackup"]["status"], "unknown")

    def test_a_forbidden_job_list_makes_those_vms_error_never_pass(self):
        d = demo()
        d["errors"] = [{"scope": RSV_LOG + "/backupJobs", "status": 403, "code": "AuthorizationFailed",
                        "message": "The client does not have authorization to perform action "
                                   "'Microsoft.RecoveryServices/vaults/backupJobs/read'"}]
        rc, rep, err = audit(d)
        self.assertEqual(rc, 3, err)
        for vm in ("nwlog-tms01", "nwlog-rpt01"):
            for rule in ("KVA-EVD-001", "KVA-EVD-002", "KVA-EVD-003"):
                f = one(rep, rule, vm)
                self.assertEqual(f["status"], "error", (rule, vm))
                self.assertIn("403 AuthorizationFailed", f["reason"])
        self.assertEqual(one(rep, "KVA-EVD-001", "nw-web01")["status"], "fail")
        self.assertEqual(one(rep, "KVA-BKP-001", "nwlog-tms01")["azureBackup"]["status"], "unknown")

    def test_a_member_who_enabled_backup_is_not_the_guest_case(self):
        d = demo()
        for p in d["principals"]:
            if p["id"] == "2e7f4a1b-c8d3-4e95-9a6f-0b1d5c8e3a72":
                p["userType"] = "Member"
        rc, rep, err = audit(d)
        self.assertEqual([f for f in rep["findings"] if f["rule"] == "KVA-EVD-006" and f["vmName"] == "nwlog-tms01"], [])

    def test_an_unknown_user_type_is_error_not_pass(self):
        d = demo()
        d["principals"] = [p for p in d["principals"] if p["tenantId"] != T_LOG]
        d["errors"] = [{"scope": "graph:/v1.0/users/2e7f4a1b-c8d3-4e95-9a6f-0b1d5c8e3a72 (tenant %s)" % T_LOG,
                        "status": 403, "code": "Authorization_RequestDenied",
                        "message": "Insufficient privileges to complete the operation."}]
        rc, rep, err = audit(d)
        self.assertEqual(rc, 3, err)
        f = one(rep, "KVA-EVD-006", "nwlog-tms01")
        self.assertEqual(f["status"], "error")
        self.assertIn("Member or a Guest", f["reason"])

    def test_a_grant_older_than_the_failure_points_elsewhere(self):
        d = demo()
        for v in d["vaults"]:
            if v["name"] == "kv-nw-apps-weu":
                v["systemData"]["lastModifiedAt"] = "2026-09-02T14:03:17.208Z"
        rc, rep, err = audit(d)
        self.assertIn("changedAfterFailure: false", one(rep, "KVA-EVD-005", "nw-web01")["message"])

    def test_an_hourly_policy_allows_eight_hours(self):
        d = demo()
        for it in d["backupProtectedItems"]:
            if it["properties"]["friendlyName"] == "nw-erp-app01":
                it["properties"]["policyId"] = it["properties"]["policyId"].replace("EnhancedPolicy-Daily",
                                                                                    "EnhancedPolicy-Hourly4h")
        rc, rep, err = audit(d)
        f = one(rep, "KVA-EVD-004", "nw-erp-app01")
        self.assertEqual(f["status"], "fail")
        self.assertEqual(f["evidence"]["vm.backup.policy.maxAgeHours"], 8)

    def test_a_policy_missing_from_the_snapshot_is_error(self):
        d = demo()
        d["backupPolicies"] = [p for p in d["backupPolicies"] if "rsv-nw-dr-neu" not in p["id"]]
        rc, rep, err = audit(d)
        self.assertEqual(rc, 3, err)
        self.assertEqual(one(rep, "KVA-EVD-004", "nw-dev-build01")["status"], "error")

    def test_a_job_list_of_the_wrong_type_is_bad_input(self):
        d = demo()
        d["backupJobs"][3]["properties"]["errorDetails"] = "UserErrorKeyVaultPermissionsNotConfigured"
        rc, rep, err = audit(d)
        self.assertEqual(rc, 2)
        self.assertRegex(err.strip(), r"\$\.backupJobs\[3\]\.properties\.errorDetails: expected an array, got a? ?string")
        self.assertEqual(len(err.strip().splitlines()), 1, err)


def key(f):
    return (f["rule"], f["status"], (f["vm"] or "").lower())


class Live(unittest.TestCase):
    """A live scan of the emulator's demo: the same evidence, read with Azure's URLs, filters and paging."""

    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator()
        cls.out = os.path.join(cls.emu.dir, "live.json")
        cls.estate = os.path.join(cls.emu.dir, "estate.json")
        cls.res = kvaudit(cls.emu, ["scan", "--include-pass", "--out", cls.out, "--save-estate", cls.estate],
                          auth="cli")
        cls.log = cls.emu.requests()
        with open(cls.out) as f:
            cls.rep = json.load(f)
        with open(cls.estate) as f:
            cls.snap = json.load(f)

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def test_the_evidence_equals_the_offline_demo(self):
        self.assertEqual(self.res.returncode, 1, self.res.stderr)
        rc, off, err = audit(os.path.join(ARGS["source"], "examples/demo-estate.json"))
        want = {key(f) for f in off["findings"] if f["rule"].startswith("KVA-EVD-")}
        got = {key(f) for f in self.rep["findings"] if f["rule"].startswith("KVA-EVD-")}
        self.assertEqual(got, want)
        for rule in ("KVA-BKP-001", "KVA-BKP-002", "KVA-BKP-004"):
            self.assertEqual(sorted((f["vmName"], f["azureBackup"]["status"]) for f in self.rep["findings"]
                                    if f["rule"] == rule),
                             sorted((f["vmName"], f["azureBackup"]["status"]) for f in off["findings"]
                                    if f["rule"] == rule))

    def test_the_snapshot_keeps_azures_shapes(self):
        s = self.snap
        self.assertEqual(len(s["backupJobs"]), len(demo()["backupJobs"]))
        self.assertRegex(s["backupJobsSince"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        job = s["backupJobs"][0]
        self.assertEqual(job["type"], "Microsoft.RecoveryServices/vaults/backupJobs")
        self.assertEqual(job["properties"]["jobType"], "AzureIaaSVMJob")
        self.assertEqual({e["operationName"]["value"] for e in s["activityLog"]},
                         {"Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/write"})
        self.assertEqual(sorted((p["tenantId"], p["userType"]) for p in s["principals"]),
                         sorted([(T_LOG, "Guest"), (T_LOG, "Member"), (T_NW, "Guest")]))
        self.assertEqual(s["errors"], [])

    def test_jobs_are_read_with_the_window_filter_and_every_page(self):
        jobs = [r for r in self.log if r["path"].lower().endswith("/backupjobs")]
        self.assertTrue(jobs)
        first = [r for r in jobs if "skiptoken" not in r["query"].lower()]
        self.assertEqual(len(first), 3)          # one per Recovery Services vault that protects a VM
        for r in first:
            q = urllib_unquote(r["query"])
            self.assertIn("api-version=2024-10-01", q)
            self.assertRegex(q, r"\$filter=backupManagementType eq 'AzureIaasVM' and startTime eq "
                                r"'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [AP]M' and endTime eq '\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [AP]M'")
        self.assertGreater(len(jobs), len(first))   # the emulator's pages of 2 were all followed
        self.assertTrue(all(r["status"] == 200 for r in jobs))

    def test_the_activity_log_is_read_for_90_days_per_resource_group(self):
        al = [r for r in self.log if "eventtypes/management/values" in r["path"].lower()
              and "skiptoken" not in r["query"].lower()]
        self.assertEqual(len(al), 3)
        for r in al:
            q = urllib_unquote(r["query"])
            self.assertIn("api-version=2015-04-01", q)
            m = re.search(r"eventTimestamp ge '([^']+)' and eventTimestamp le '([^']+)' and resourceGroupName eq "
                          r"'(rg-nw-backup-weu|rg-nw-backup-neu|rg-nwlog-backup-eus)'", q)
            self.assertTrue(m, q)

    def test_graph_is_asked_in_the_vaults_tenant(self):
        users = [r for r in self.log if re.search(r"/v1\.0/users/", r["path"])]
        self.assertEqual(sorted(r["path"].rsplit("/", 1)[1] for r in users),
                         sorted(["2e7f4a1b-c8d3-4e95-9a6f-0b1d5c8e3a72", "0d6a9c3e-5f81-4b27-a9d4-e2c7b1f5a836",
                                 "a3c9e7f1-2d64-4b58-8e0a-6f1b3d5c9e27"]))
        for r in users:
            self.assertIn("$select=id,userType,userPrincipalName,displayName", urllib_unquote(r["query"]))


def urllib_unquote(s):
    import urllib.parse
    return urllib.parse.unquote(s or "")


class LiveFaults(unittest.TestCase):
    """What a refused read does to the evidence rules: error with the reason, never pass."""

    def run_scan(self, overlay, *args):
        emu = Emulator(overlay=overlay)
        try:
            out = os.path.join(emu.dir, "live.json")
            r = kvaudit(emu, ["scan", "--include-pass", "--out", out] + list(args))
            rep = json.load(open(out)) if os.path.exists(out) else None
            return r, rep, emu.requests()
        finally:
            emu.stop()

    def test_a_403_on_jobs_makes_those_vms_error(self):
        overlay = {"emulator": {"access": [{"objectId": SCANNER_IN_LOG, "deny": [RSV_LOG + "/backupJobs"]}]}}
        r, rep, log = self.run_scan(overlay)
        self.assertEqual(r.returncode, 3, r.stderr)
        err = [e for e in rep["errors"] if e["scope"].lower() == (RSV_LOG + "/backupJobs").lower()]
        self.assertEqual(len(err), 1, rep["errors"])
        self.assertEqual((err[0]["status"], err[0]["code"]), (403, "AuthorizationFailed"))
        for vm in ("nwlog-tms01", "nwlog-rpt01"):
            self.assertEqual(one(rep, "KVA-EVD-001", vm)["status"], "error")
        self.assertEqual(one(rep, "KVA-EVD-001", "nw-web01")["status"], "fail")
        self.assertEqual(one(rep, "KVA-BKP-001", "nwlog-tms01", "kv-nwlog-ops-eus")["azureBackup"]["status"], "unknown")

    def test_the_users_are_read_while_jobs_still_are(self):
        # Slow job pages: the Graph reads of the users the Activity Log names start as soon as it is in,
        # not after every evidence list (the last thing a scan waited for), and the report is the same.
        slow = {"emulator": {"faults": [{"match": {"pathRegex": "/backupJobs$"}, "times": 0, "latencyMs": 700}]}}
        r, rep, log = self.run_scan(slow)
        self.assertEqual(r.returncode, 1, r.stderr)
        t = lambda e: datetime.datetime.strptime(e["time"][:26], "%Y-%m-%dT%H:%M:%S.%f")
        users = [t(e) for e in log if "/v1.0/users/" in e["path"]]
        jobs = [t(e) + datetime.timedelta(milliseconds=e["durationMs"]) for e in log
                if e["path"].endswith("/backupJobs")]
        self.assertTrue(users and jobs, log)
        self.assertLess(min(users), max(jobs), "no Graph user read started before the last jobs page ended")
        r2, rep2, _ = self.run_scan(None)
        key = lambda rp: sorted((f["rule"], f["status"], f.get("vm"), f.get("vault")) for f in rp["findings"])
        self.assertEqual(key(rep), key(rep2))

    def test_a_vaults_jobs_start_before_its_protected_items_are_in(self):
        # Slow protected items: each vault's job list (its longest chain of pages) starts as soon as the
        # vault is known, with either engine, not once its protected items are in; the findings are the same.
        slow = {"emulator": {"faults": [{"match": {"pathRegex": "/backupProtectedItems$"}, "times": 0,
                                         "latencyMs": 600}]}}
        t = lambda e: datetime.datetime.strptime(e["time"][:26], "%Y-%m-%dT%H:%M:%S.%f")
        base = None
        for engine in ("graph", "arm"):
            r, rep, log = self.run_scan(slow, "--engine", engine)
            self.assertEqual(r.returncode, 1, r.stderr)
            items = {e["path"].lower()[:-len("/backupProtectedItems")]: t(e) + datetime.timedelta(
                milliseconds=e["durationMs"]) for e in log if e["path"].endswith("/backupProtectedItems")}
            jobs = {}
            for e in log:
                if e["path"].endswith("/backupJobs"):
                    v = e["path"].lower()[:-len("/backupJobs")]
                    jobs[v] = min(jobs.get(v, t(e)), t(e))
            self.assertEqual(sorted(jobs), sorted(items), engine)
            for v in jobs:
                self.assertLess(jobs[v], items[v], "%s: the jobs of %s waited for its protected items" % (engine, v))
            key = sorted((f["rule"], f["status"], f.get("vm"), f.get("vault")) for f in rep["findings"])
            self.assertEqual(key, base or key, engine)
            base = key

    def test_with_one_request_at_a_time_the_job_pages_go_first(self):
        # The longest chains first (batch.c CHAINS): with --concurrency 1, every page of a vault's jobs
        # starts before its backup policy list, which ends no chain (before, the policies went after the
        # jobs' first page, in the order queued), and with Resource Graph, which knows every vault at
        # once, before any policy list.
        for engine in ("graph", "arm"):
            r, rep, log = self.run_scan(None, "--engine", engine, "--concurrency", "1")
            self.assertEqual(r.returncode, 1, r.stderr)
            order = sorted(log, key=lambda e: (e["time"], e["seq"]))
            jobs, policies = {}, {}
            for i, e in enumerate(order):
                for suffix, into in (("/backupJobs", jobs), ("/backupPolicies", policies)):
                    if e["path"].endswith(suffix):
                        into.setdefault(e["path"][:-len(suffix)].lower(), []).append(i)
            self.assertEqual(sorted(jobs), sorted(policies), engine)
            self.assertTrue(any(len(v) > 1 for v in jobs.values()), jobs)   # a chain of pages
            for v in jobs:
                self.assertLess(max(jobs[v]), min(policies[v]), (engine, v))
            if engine == "graph":
                self.assertLess(max(max(v) for v in jobs.values()), min(min(v) for v in policies.values()))

    def test_a_graph_refusal_leaves_the_guest_question_open(self):
        overlay = {"emulator": {"access": [{"objectId": SCANNER_IN_LOG, "graph": False}]}}
        r, rep, log = self.run_scan(overlay)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertEqual(one(rep, "KVA-EVD-006", "nwlog-tms01")["status"], "error")
        self.assertEqual(one(rep, "KVA-EVD-006", "nw-web02")["status"], "pass")

    def test_since_narrows_the_job_window(self):
        r, rep, log = self.run_scan(None, "--since", "36h")
        self.assertEqual(r.returncode, 1, r.stderr)
        # The disk exclusion (the 26th) and the lack of network (the 26th) are older than 36 hours.
        self.assertEqual(one(rep, "KVA-EVD-002", "nw-web02")["status"], "pass")
        self.assertEqual(one(rep, "KVA-EVD-003", "nw-ftp01")["status"], "pass")
        self.assertEqual(one(rep, "KVA-EVD-001", "nwlog-tms01")["status"], "fail")

    def test_since_from_the_config_file_and_the_flag_wins(self):
        emu = Emulator()
        try:
            cfg = os.path.join(emu.dir, "kvaudit.json")
            with open(cfg, "w") as f:
                json.dump({"kind": "kvaudit.config", "version": 1, "since": "36h"}, f)
            for args, disk_exclusion in (([], "pass"), (["--since", "7d"], "fail")):
                out = os.path.join(emu.dir, "r.json")
                r = kvaudit(emu, ["scan", "--config", cfg, "--include-pass", "--out", out] + args)
                self.assertEqual(r.returncode, 1, r.stderr)
                with open(out) as f:
                    self.assertEqual(one(json.load(f), "KVA-EVD-002", "nw-web02")["status"], disk_exclusion, args)
        finally:
            emu.stop()

    def test_a_bad_since_is_bad_usage(self):
        emu = Emulator()
        try:
            for bad in ("7", "7w", "91d", "-1d", "0h"):
                r = kvaudit(emu, ["collect", "--since", bad, "--out", os.path.join(emu.dir, "e.json")])
                self.assertEqual(r.returncode, 2, (bad, r.stderr))
                self.assertIn("--since", r.stderr)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        finally:
            emu.stop()


if __name__ == "__main__":
    sys.exit(main())
