#!/usr/bin/env python3
"""
End-to-end tests of the kvaudit binary on offline estate snapshots.

    python3 tests/e2e/test_offline.py --kvaudit build/kvaudit --source .  [unittest args]

Runs the real binary (one subprocess per call, 30 s timeout) in temporary
directories against examples/demo-estate.json, examples/partial-estate.json,
broken copies of them and custom rule directories, and checks the CLI
contract (exit codes, one-line errors, output files) and the expected
results of the demo that examples/README.md documents.

Python 3 standard library only.  Prints "N passed, N failed" last and exits
non-zero when any test failed.
"""
import argparse
import copy
import csv
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

KVAUDIT = None          # path of the binary (--kvaudit)
SOURCE = None           # repository root (--source)
TIMEOUT = 30

# ---------------------------------------------------------------- the demo's cast
T_NW = "3f6b2c8e-5a41-4d7f-9c2e-8b1a7d4e6f20"     # Northwind Traders: caller Member, BMS found
T_LOG = "9c1d4e7a-2b36-4f58-a1c9-5e0f3b7d2a84"    # Northwind Logistics: caller Guest, BMS found
T_OLD = "d27a9f14-6c83-4b1e-8f5d-0a3c9e6b1f72"    # nwlegacy: caller Member, BMS absent

ADE_VMS = {
    "nw-erp-app01", "nw-erp-db01", "nw-web01", "nw-web02", "nw-bi01", "nw-dev-build01",
    "nw-legacy-app01", "nw-ftp01", "nwlog-tms01", "nwlog-wms01", "nwlog-rpt01", "nwold-archive01",
}
NON_ADE_VMS = {"nw-sap-hana01", "nw-analytics01", "nw-cvm01", "nw-test01"}
ADE_VAULTS = {
    "kv-nw-prod-weu", "kv-nw-apps-weu", "kv-nw-dev-neu", "kv-nw-shared-weu", "kv-nwlog-ops-eus",
    "kv-nwlog-data-eus", "kv-nw-rbac-weu", "kv-nw-bi-weu", "kv-nwlog-rbac-eus", "kv-nwold-archive-weu",
}
NON_ADE_VAULTS = {"kv-nw-des-weu"}
FAKE_SECRET = "Nw7~Q8fake.AADClientSecret-d0-n0t-use_4e1b9c"

BUILTIN = ["BKP-001", "BKP-002", "BKP-003", "BKP-004", "BKP-005", "TEN-001", "TEN-002", "TEN-003",
           "VLT-001", "VLT-002", "VLT-003", "LIM-001", "LIM-002", "LIM-003", "LIM-004", "LIM-005",
           "VM-001", "VM-002",
           "RST-001", "RST-002", "RST-003", "RST-004", "RST-005", "RST-006", "RST-007", "RST-008", "RST-009",
           "EVD-001", "EVD-002", "EVD-003", "EVD-004", "EVD-005", "EVD-006"]

# (rule, vm name, vault name, tenant, expected status): the expected results of the demo,
# the same table as examples/README.md.  None matches a null field.
BINDINGS = [
    # vm, vault, {rule: status}
    ("nw-erp-app01", "kv-nw-prod-weu", {"BKP-001": "pass", "BKP-002": "pass", "LIM-001": "pass",
                                        "LIM-002": "pass", "LIM-003": "pass"}),
    ("nw-erp-db01", "kv-nw-prod-weu", {"BKP-001": "pass", "LIM-001": "pass", "LIM-002": "pass"}),
    ("nw-erp-db01", "kv-nw-shared-weu", {"BKP-002": "fail", "LIM-001": "fail", "LIM-002": "pass",
                                          "LIM-003": "pass"}),
    ("nw-web01", "kv-nw-apps-weu", {"BKP-001": "pass", "BKP-002": "pass", "LIM-001": "pass",
                                    "LIM-002": "pass", "LIM-003": "pass"}),
    ("nw-web02", "kv-nw-rbac-weu", {"BKP-004": "pass", "LIM-001": "pass", "LIM-002": "pass",
                                    "LIM-003": "fail"}),
    ("nw-bi01", "kv-nw-prod-weu", {"BKP-001": "pass", "LIM-001": "pass", "LIM-002": "pass"}),
    ("nw-bi01", "kv-nw-bi-weu", {"BKP-004": "pass", "LIM-001": "pass", "LIM-002": "pass"}),
    ("nw-dev-build01", "kv-nw-dev-neu", {"BKP-001": "pass", "LIM-001": "pass", "LIM-002": "fail"}),
    ("nw-legacy-app01", "kv-nw-apps-weu", {"BKP-001": "pass", "LIM-001": "pass", "LIM-002": "pass"}),
    ("nw-ftp01", "kv-nw-prod-weu", {"BKP-001": "pass", "BKP-002": "pass", "LIM-001": "pass",
                                    "LIM-002": "pass", "LIM-003": "pass"}),
    ("nwlog-tms01", "kv-nwlog-ops-eus", {"BKP-001": "fail", "LIM-001": "pass", "LIM-002": "pass"}),
    ("nwlog-wms01", "kv-nwlog-data-eus", {"BKP-001": "fail", "BKP-002": "fail", "LIM-001": "pass",
                                          "LIM-002": "pass", "LIM-003": "skipped"}),
    ("nwlog-rpt01", "kv-nwlog-rbac-eus", {"BKP-004": "fail", "LIM-001": "pass", "LIM-002": "pass"}),
    ("nwold-archive01", "kv-nwold-archive-weu", {"BKP-001": "fail", "LIM-001": "pass", "LIM-002": "pass"}),
]
VAULT_RESULTS = {
    "kv-nw-prod-weu": {"TEN-002": "pass", "TEN-003": "pass", "VLT-001": "pass", "VLT-002": "pass", "VLT-003": "pass"},
    "kv-nw-apps-weu": {"TEN-002": "pass", "TEN-003": "pass", "VLT-001": "pass", "VLT-002": "fail", "VLT-003": "pass"},
    "kv-nw-dev-neu": {"BKP-003": "fail", "TEN-002": "pass", "TEN-003": "pass", "VLT-001": "fail", "VLT-002": "fail",
                      "VLT-003": "pass"},
    "kv-nw-shared-weu": {"TEN-002": "pass", "TEN-003": "pass", "VLT-001": "pass", "VLT-002": "pass", "VLT-003": "pass"},
    "kv-nwlog-ops-eus": {"BKP-003": "pass", "TEN-002": "pass", "TEN-003": "fail", "VLT-001": "pass", "VLT-002": "pass",
                         "VLT-003": "fail"},
    "kv-nwlog-data-eus": {"TEN-002": "fail", "TEN-003": "pass", "VLT-001": "pass", "VLT-002": "pass", "VLT-003": "pass"},
    "kv-nw-rbac-weu": {"TEN-002": "pass", "VLT-001": "pass", "VLT-002": "pass", "VLT-003": "pass"},
    "kv-nw-bi-weu": {"TEN-002": "pass", "VLT-001": "pass", "VLT-002": "pass", "VLT-003": "pass"},
    "kv-nwlog-rbac-eus": {"TEN-002": "pass", "VLT-001": "pass", "VLT-002": "pass", "VLT-003": "pass"},
    "kv-nwold-archive-weu": {"TEN-002": "pass", "TEN-003": "pass", "VLT-001": "pass", "VLT-002": "fail",
                             "VLT-003": "pass"},
}
VM_RESULTS = {
    "nw-erp-app01": {"VM-001": "pass", "VM-002": "pass", "LIM-004": "pass", "LIM-005": "pass"},
    "nw-erp-db01": {"VM-001": "pass", "VM-002": "pass", "LIM-004": "pass", "LIM-005": "pass"},
    "nw-web01": {"VM-001": "fail", "VM-002": "pass", "LIM-004": "pass", "LIM-005": "pass"},
    "nw-web02": {"VM-001": "pass", "VM-002": "pass", "LIM-004": "pass", "LIM-005": "pass"},
    "nw-bi01": {"VM-001": "pass", "VM-002": "fail", "LIM-005": "pass"},
    "nw-dev-build01": {"VM-001": "pass", "VM-002": "pass", "LIM-004": "fail", "LIM-005": "pass"},
    "nw-legacy-app01": {"VM-001": "pass", "VM-002": "pass", "LIM-004": "pass", "LIM-005": "fail"},
    "nw-ftp01": {"VM-001": "pass", "VM-002": "pass", "LIM-004": "pass", "LIM-005": "pass"},
    "nwlog-tms01": {"VM-001": "pass", "VM-002": "pass", "LIM-004": "pass", "LIM-005": "pass"},
    "nwlog-wms01": {"VM-001": "skipped", "VM-002": "fail", "LIM-005": "pass"},
    "nwlog-rpt01": {"VM-001": "pass", "VM-002": "pass", "LIM-004": "pass", "LIM-005": "pass"},
    "nwold-archive01": {"VM-001": "pass", "VM-002": "fail", "LIM-005": "pass"},
}
# Azure Backup's evidence (KVA-EVD-*): what the demo's backup jobs, policies and Activity Log say of
# each protected ADE VM (examples/README.md); unprotected VMs have no EVD finding at all.
EVD_RESULTS = {
    "nw-erp-app01": {"EVD-001": "pass", "EVD-002": "pass", "EVD-003": "pass", "EVD-004": "pass", "EVD-005": "pass"},
    "nw-erp-db01": {"EVD-001": "pass", "EVD-002": "pass", "EVD-003": "pass", "EVD-004": "pass"},
    "nw-web01": {"EVD-001": "fail", "EVD-002": "pass", "EVD-003": "pass", "EVD-004": "pass", "EVD-005": "fail"},
    "nw-web02": {"EVD-001": "pass", "EVD-002": "fail", "EVD-003": "pass", "EVD-004": "pass", "EVD-005": "pass",
                 "EVD-006": "pass"},
    "nw-dev-build01": {"EVD-001": "pass", "EVD-002": "pass", "EVD-003": "pass", "EVD-004": "fail", "EVD-005": "pass"},
    "nw-legacy-app01": {"EVD-001": "pass", "EVD-002": "pass", "EVD-003": "pass", "EVD-004": "pass", "EVD-005": "pass"},
    "nw-ftp01": {"EVD-001": "pass", "EVD-002": "pass", "EVD-003": "fail", "EVD-004": "pass", "EVD-005": "pass"},
    "nwlog-tms01": {"EVD-001": "fail", "EVD-002": "pass", "EVD-003": "pass", "EVD-004": "pass", "EVD-006": "fail"},
    "nwlog-rpt01": {"EVD-001": "pass", "EVD-002": "pass", "EVD-003": "pass", "EVD-004": "pass"},
}
TENANT_RESULTS = {
    T_NW: {"BKP-005": "pass", "TEN-001": "pass"},
    T_LOG: {"BKP-005": "pass", "TEN-001": "fail"},
    T_OLD: {"BKP-005": "fail", "TEN-001": "pass"},
}

STATUS_ORDER = {"fail": 0, "error": 1, "skipped": 2, "suppressed": 3, "pass": 4}
SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
CSV_HEADER = ["rule", "severity", "status", "subject", "vm_name", "vault_name", "vm", "vault",
              "subscription", "tenant", "message", "reason", "remediation", "fix"]
FORMULA_LEADERS = ("=", "+", "-", "@", "\t", "\r")
STAMP_RE = re.compile(r"^kvaudit-\d{8}T\d{6}Z\.(json|csv)$")


# ---------------------------------------------------------------- helpers
def demo_path():
    return os.path.join(SOURCE, "examples", "demo-estate.json")


def partial_path():
    return os.path.join(SOURCE, "examples", "partial-estate.json")


def load_demo():
    with open(demo_path(), encoding="utf-8") as f:
        return json.load(f)


class Run:
    def __init__(self, cp):
        self.rc = cp.returncode
        self.out = cp.stdout.decode("utf-8", "replace")
        self.err = cp.stderr.decode("utf-8", "replace")

    def __repr__(self):
        return "exit %s\n--- stdout\n%s\n--- stderr\n%s" % (self.rc, self.out[:3000], self.err[:3000])


def kv(*args, cwd=None):
    """Runs kvaudit with args; returns a Run."""
    cp = subprocess.run([KVAUDIT] + [str(a) for a in args], cwd=cwd, stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT)
    return Run(cp)


def short(rule_id):
    """'KVA-BKP-001' -> 'BKP-001' (the catalog's prefix does not matter here)."""
    m = re.search(r"([A-Z]{2,4}-\d{3})$", rule_id or "")
    return m.group(1) if m else rule_id


def select(findings, rule=None, vm=None, vault=None, tenant=None, subject=None, status=None):
    out = []
    for f in findings:
        if rule is not None and short(f.get("rule")) != rule:
            continue
        if vm is not None and f.get("vmName") != vm:
            continue
        if vault is not None and f.get("vaultName") != vault:
            continue
        if tenant is not None and (f.get("tenant") or "").lower() != tenant.lower():
            continue
        if subject is not None and f.get("subject") != subject:
            continue
        if status is not None and f.get("status") != status:
            continue
        out.append(f)
    return out


def one_line_error(test, run, *needles):
    """Asserts a usage/input error: exit 2, one stderr line 'kvaudit: ...' containing needles."""
    test.assertEqual(run.rc, 2, run)
    lines = [l for l in run.err.splitlines() if l.strip()]
    test.assertEqual(len(lines), 1, "expected exactly one stderr line: %r" % run)
    test.assertTrue(lines[0].startswith("kvaudit: "), lines[0])
    for n in needles:
        test.assertIn(n.lower(), lines[0].lower(), lines[0])
    return lines[0]


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
    return path


def files_in(d):
    return sorted(os.listdir(d))


def parse_csv(text):
    rows = list(csv.reader(io.StringIO(text, newline="")))
    return rows[0], rows[1:]


def audit_json(estate, *extra, cwd):
    """audit ESTATE --format json --out - [extra]; returns (Run, report or None)."""
    r = kv("audit", estate, "--format", "json", "--out", "-", "-q", *extra, cwd=cwd)
    try:
        rep = json.loads(r.out)
    except ValueError:
        rep = None
    return r, rep


# ---------------------------------------------------------------- the demo
class DemoAudit(unittest.TestCase):
    """One `audit --include-pass --include-skipped --format json,csv --out DIR` run of the demo, checked every way."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="kvaudit-e2e-")
        cls.outdir = os.path.join(cls.tmp.name, "reports")
        os.mkdir(cls.outdir)
        # --as-of the demo's collection time: its "about to expire" secrets and keys stay so.
        # --include-skipped: the expected results name the demo's skipped findings one by one.
        cls.res = kv("audit", demo_path(), "--format", "json,csv", "--out", cls.outdir, "--include-pass",
                     "--include-skipped",
                     "--as-of", "2026-11-28T12:00:00Z", cwd=cls.tmp.name)
        cls.files = files_in(cls.outdir)
        cls.report, cls.csv_text = None, None
        for name in cls.files:
            with open(os.path.join(cls.outdir, name), encoding="utf-8", newline="") as f:
                if name.endswith(".json"):
                    cls.report = json.load(f)
                elif name.endswith(".csv"):
                    cls.csv_text = f.read()
        cls.findings = cls.report["findings"] if cls.report else []

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.assertIsNotNone(self.report, "no JSON report written: %r" % self.res)

    # -- exit code, files, summary
    def test_demo_exits_1(self):
        self.assertEqual(self.res.rc, 1, self.res)

    def test_writes_one_json_and_one_csv_with_the_same_stamp(self):
        self.assertEqual(len(self.files), 2, self.files)
        for name in self.files:
            self.assertRegex(name, STAMP_RE)
        stems = {os.path.splitext(n)[0] for n in self.files}
        self.assertEqual(len(stems), 1, self.files)

    def test_summary_goes_to_stderr(self):
        self.assertTrue(self.res.err.strip(), "expected a human summary on stderr without -q")

    def test_report_header(self):
        r = self.report
        self.assertEqual(r["kind"], "kvaudit.report")
        self.assertEqual(r["version"], 1)
        self.assertEqual(r["tool"]["name"], "kvaudit")
        self.assertGreaterEqual(r["tool"]["rules"], 18)
        self.assertEqual(r["scan"]["collectedAt"], "2026-11-28T12:00:00Z")
        self.assertEqual(r["scan"]["cloud"], "AzureCloud")
        self.assertEqual(r["scan"]["failOn"], "low")
        self.assertIs(r["scan"]["complete"], True)
        self.assertEqual(r["summary"]["exitCode"], 1)
        self.assertEqual(r["errors"], [])

    def test_subject_counts(self):
        s = self.report["summary"]
        self.assertEqual(s["subjects"], {"vm": 16, "vault": 11, "binding": 14, "tenant": 3})
        self.assertEqual(s["adeVms"], 12)

    def test_summary_counts_match_listed_findings(self):
        s = self.report["summary"]
        for st in ("fail", "pass", "error", "skipped", "suppressed"):
            self.assertEqual(s["byStatus"][st], len(select(self.findings, status=st)), st)
        for sev in SEVERITY_ORDER:
            for st in ("fail", "pass"):
                n = len([f for f in self.findings if f["severity"] == sev and f["status"] == st])
                self.assertEqual(s["bySeverity"][sev][st], n, (sev, st))
        failing = [f for f in self.findings
                   if f["status"] == "fail" and SEVERITY_ORDER[f["severity"]] <= SEVERITY_ORDER["low"]]
        self.assertEqual(s["failing"], len(failing))

    def test_no_error_findings(self):
        self.assertEqual(select(self.findings, status="error"), [])

    def test_findings_are_sorted(self):
        keys = [(STATUS_ORDER[f["status"]], SEVERITY_ORDER[f["severity"]]) for f in self.findings]
        self.assertEqual(keys, sorted(keys))

    def test_finding_fields(self):
        fields = {"rule", "title", "severity", "status", "subject", "vm", "vmName", "vault", "vaultName",
                  "subscription", "tenant", "message", "reason", "evidence", "remediation", "references"}
        for f in self.findings:
            self.assertTrue(fields <= set(f), (sorted(fields - set(f)), f.get("rule")))
            if f["subject"] == "binding":
                self.assertTrue(f["vm"] and f["vault"], f)
                self.assertRegex(f["vm"].lower(), r"^/subscriptions/[0-9a-f-]{36}/resourcegroups/")
                self.assertRegex(f["vault"].lower(), r"/providers/microsoft.keyvault/vaults/[^/]+$")
            if f["subject"] == "tenant":
                self.assertIsNone(f["vm"])
                self.assertIsNone(f["vault"])
                self.assertRegex(f["tenant"], r"^[0-9a-f-]{36}$")
            if f["subject"] == "vault":
                self.assertIsNone(f["vm"])
            if f["status"] == "fail":
                self.assertTrue(f["message"])
                self.assertTrue(f["remediation"] and f["remediation"].get("text"), f["rule"])
            self.assertIsInstance(f["evidence"], dict)

    # -- every rule both passes and fails somewhere
    def test_every_builtin_rule_passes_and_fails(self):
        lst = kv("rules", "list")
        self.assertEqual(lst.rc, 0, lst)
        ids = [l.split()[0] for l in lst.out.splitlines() if l.strip()]
        self.assertEqual(sorted(short(i) for i in ids), sorted(BUILTIN))
        for rid in ids:
            with self.subTest(rule=rid):
                st = {f["status"] for f in self.findings if f["rule"] == rid}
                self.assertIn("pass", st, rid)
                self.assertIn("fail", st, rid)

    # -- the expected results table (examples/README.md)
    def expect(self, rule, status, **where):
        got = select(self.findings, rule=rule, **where)
        self.assertEqual(len(got), 1, "%s %s: %d findings: %s" % (rule, where, len(got),
                                                                   [(g["rule"], g["status"]) for g in got]))
        self.assertEqual(got[0]["status"], status, "%s %s: %s" % (rule, where, got[0].get("message")))
        return got[0]

    def test_binding_results(self):
        for vm, vault, rules in BINDINGS:
            for rule, status in rules.items():
                with self.subTest(rule=rule, vm=vm, vault=vault):
                    f = self.expect(rule, status, vm=vm, vault=vault, subject="binding")
                    self.assertEqual(f["subject"], "binding")

    def test_vault_results(self):
        for vault, rules in VAULT_RESULTS.items():
            for rule, status in rules.items():
                with self.subTest(rule=rule, vault=vault):
                    self.expect(rule, status, vault=vault, subject="vault")

    def test_vm_results(self):
        for vm, rules in VM_RESULTS.items():
            for rule, status in rules.items():
                with self.subTest(rule=rule, vm=vm):
                    self.expect(rule, status, vm=vm, subject="vm")

    def test_evidence_results(self):
        for vm, rules in EVD_RESULTS.items():
            for rule, status in rules.items():
                with self.subTest(rule=rule, vm=vm):
                    self.expect(rule, status, vm=vm, subject="vm")
        evd = {f["vmName"] for f in self.findings if f["rule"].startswith("KVA-EVD-")}
        self.assertEqual(evd, set(EVD_RESULTS))

    def test_backup_permission_findings_say_what_azure_backup_saw(self):
        said = {(f["rule"], f["vmName"], f["vaultName"]): f["azureBackup"]["status"] for f in self.findings
                if f["rule"] in ("KVA-BKP-001", "KVA-BKP-002", "KVA-BKP-004") and f["status"] == "fail"}
        self.assertEqual(said[("KVA-BKP-001", "nwlog-tms01", "kv-nwlog-ops-eus")], "confirmed")
        self.assertEqual(said[("KVA-BKP-002", "nw-erp-db01", "kv-nw-shared-weu")], "not-seen")
        self.assertEqual(said[("KVA-BKP-001", "nwlog-wms01", "kv-nwlog-data-eus")], "unprotected")
        for f in self.findings:
            self.assertEqual("azureBackup" in f, f["rule"] in ("KVA-BKP-001", "KVA-BKP-002", "KVA-BKP-004"), f["rule"])

    def test_tenant_results(self):
        for tenant, rules in TENANT_RESULTS.items():
            for rule, status in rules.items():
                with self.subTest(rule=rule, tenant=tenant):
                    self.expect(rule, status, tenant=tenant, subject="tenant")

    def test_bindings_are_exactly_the_designed_ones(self):
        got = {(f["vmName"], f["vaultName"]) for f in self.findings if f["subject"] == "binding"}
        self.assertEqual(got, {(vm, vault) for vm, vault, _ in BINDINGS})

    def test_unprotected_vms_have_no_backup_location_finding(self):
        for vm in ("nw-bi01", "nwlog-wms01", "nwold-archive01"):
            self.assertEqual(select(self.findings, rule="LIM-004", vm=vm), [], vm)

    # -- specific stories
    def test_guest_tenant_vault_lacks_only_secrets_backup(self):
        f = self.expect("BKP-001", "fail", vm="nwlog-tms01", vault="kv-nwlog-ops-eus")
        self.assertEqual(f["tenant"], T_LOG)
        secrets = [s.lower() for s in f["evidence"]["vault.backupPolicy.secrets"]]
        self.assertEqual({"get", "list", "backup"} - set(secrets), {"backup"})
        self.assertIn("backup", f["message"].lower())
        self.assertIn("kv-nwlog-ops-eus", f["message"])

    def test_pascalcase_portal_entry_passes_and_is_lowercased(self):
        f = self.expect("BKP-001", "pass", vm="nw-web01", vault="kv-nw-apps-weu")
        self.assertEqual(sorted(f["evidence"]["vault.backupPolicy.secrets"]), ["backup", "get", "list"])
        f = self.expect("BKP-002", "pass", vm="nw-web01", vault="kv-nw-apps-weu")
        self.assertEqual(sorted(f["evidence"]["vault.backupPolicy.keys"]), ["backup", "get", "list"])

    def test_all_permission_is_expanded(self):
        f = self.expect("BKP-001", "pass", vm="nw-dev-build01", vault="kv-nw-dev-neu")
        self.assertTrue({"get", "list", "backup"} <= set(f["evidence"]["vault.backupPolicy.secrets"]))
        self.assertNotIn("all", f["evidence"]["vault.backupPolicy.secrets"])
        f = self.expect("BKP-003", "fail", vault="kv-nw-dev-neu")
        self.assertTrue(f["evidence"]["vault.backupPolicy.keys"])

    def test_shared_kek_vault_lacks_keys_backup(self):
        f = self.expect("BKP-002", "fail", vm="nw-erp-db01", vault="kv-nw-shared-weu")
        keys = [k.lower() for k in f["evidence"]["vault.backupPolicy.keys"]]
        self.assertEqual({"get", "list", "backup"} - set(keys), {"backup"})

    def test_vault_without_backup_entry(self):
        f = self.expect("BKP-001", "fail", vm="nwlog-wms01", vault="kv-nwlog-data-eus")
        self.assertEqual(f["evidence"]["vault.backupPolicy.secrets"], [])

    def test_rbac_role_at_resource_group_scope_passes(self):
        self.expect("BKP-004", "pass", vm="nw-web02", vault="kv-nw-rbac-weu")

    def test_custom_role_passes_and_secrets_user_fails(self):
        self.expect("BKP-004", "pass", vm="nw-bi01", vault="kv-nw-bi-weu")
        self.expect("BKP-004", "fail", vm="nwlog-rpt01", vault="kv-nwlog-rbac-eus")

    def test_access_policy_rules_do_not_apply_to_rbac_vaults(self):
        for vault in ("kv-nw-rbac-weu", "kv-nw-bi-weu", "kv-nwlog-rbac-eus"):
            for rule in ("BKP-001", "BKP-002", "BKP-003"):
                self.assertEqual(select(self.findings, rule=rule, vault=vault), [], (rule, vault))
        for vault in ("kv-nw-prod-weu", "kv-nw-apps-weu", "kv-nwlog-ops-eus"):
            self.assertEqual(select(self.findings, rule="BKP-004", vault=vault), [], vault)

    def test_certificate_backed_kek(self):
        f = self.expect("LIM-003", "fail", vm="nw-web02", vault="kv-nw-rbac-weu")
        self.assertIs(f["evidence"]["binding.kekManaged"], True)

    def test_non_ade_vms_and_vaults_have_no_findings(self):
        for vm in NON_ADE_VMS:
            self.assertEqual(select(self.findings, vm=vm), [], vm)
        for vault in NON_ADE_VAULTS:
            self.assertEqual(select(self.findings, vault=vault), [], vault)
        names = {f["vmName"] for f in self.findings if f["vmName"]}
        self.assertTrue(names <= ADE_VMS, names - ADE_VMS)
        vaults = {f["vaultName"] for f in self.findings if f["vaultName"]}
        self.assertEqual(vaults, ADE_VAULTS)

    def test_secret_in_protected_settings_is_never_echoed(self):
        with open(demo_path(), encoding="utf-8") as f:
            self.assertIn(FAKE_SECRET, f.read(), "the demo must carry the fake secret for this test")
        blob = self.res.out + self.res.err + json.dumps(self.report) + (self.csv_text or "")
        self.assertNotIn(FAKE_SECRET, blob)

    # -- the inventory: what ADE detection found
    def inv_vm(self, name):
        vms = [v for v in self.report["inventory"]["vms"] if v["name"] == name]
        self.assertEqual(len(vms), 1, name)
        return vms[0]

    def test_inventory_lists_exactly_the_ade_vms(self):
        self.assertEqual({v["name"] for v in self.report["inventory"]["vms"]}, ADE_VMS)

    def test_inventory_detection_sources_and_flavours(self):
        self.assertEqual(self.inv_vm("nw-legacy-app01")["adeFlavour"], "legacy-aad")
        for name in ADE_VMS - {"nw-legacy-app01"}:
            self.assertEqual(self.inv_vm(name)["adeFlavour"], "current", name)
        self.assertIn("vmModel", self.inv_vm("nw-ftp01")["sources"])
        self.assertEqual(self.inv_vm("nwlog-wms01")["sources"], ["extension"])
        self.assertEqual(self.inv_vm("nwlog-rpt01")["sources"], ["instanceView"])
        self.assertIn("disk", self.inv_vm("nw-erp-app01")["sources"])
        self.assertEqual(self.inv_vm("nw-web01")["os"], "Linux")
        self.assertEqual(self.inv_vm("nwlog-rpt01")["os"], "Windows")
        self.assertIs(self.inv_vm("nw-erp-db01")["kek"], True)
        self.assertIs(self.inv_vm("nwlog-wms01")["kek"], True)
        self.assertIs(self.inv_vm("nw-bi01")["kek"], False)
        self.assertIs(self.inv_vm("nw-dev-build01")["kek"], False)
        self.assertIs(self.inv_vm("nw-legacy-app01")["kek"], False)   # KeyEncryptionKeyURL ""

    def test_inventory_volumes_name_the_right_vaults(self):
        def vault_names(vm, key):
            return {(v[key] or "").rsplit("/", 1)[-1].lower() for v in self.inv_vm(vm)["volumes"] if v[key]}
        self.assertEqual(vault_names("nw-bi01", "bekVault"), {"kv-nw-prod-weu", "kv-nw-bi-weu"})
        self.assertEqual(vault_names("nw-erp-db01", "bekVault"), {"kv-nw-prod-weu"})
        self.assertEqual(vault_names("nw-erp-db01", "kekVault"), {"kv-nw-shared-weu"})
        self.assertEqual(vault_names("nwlog-wms01", "kekVault"), {"kv-nwlog-data-eus"})
        self.assertEqual(vault_names("nw-dev-build01", "kekVault"), set())

    # -- CSV
    def test_csv_header_and_parse(self):
        self.assertIsNotNone(self.csv_text)
        self.assertIn("\r\n", self.csv_text)
        header, rows = parse_csv(self.csv_text)
        self.assertEqual(header, CSV_HEADER)
        self.assertEqual(len(rows), len(self.findings))
        for row in rows:
            self.assertEqual(len(row), len(CSV_HEADER), row)

    def test_csv_and_json_agree_on_failing_findings(self):
        header, rows = parse_csv(self.csv_text)
        ix = {h: i for i, h in enumerate(header)}

        def key_csv(row):
            return tuple(row[ix[c]].lower() for c in ("rule", "severity", "vm", "vault", "tenant"))

        def key_json(f):
            return tuple((f[c] or "").lower() for c in ("rule", "severity", "vm", "vault", "tenant"))
        from_csv = sorted(key_csv(r) for r in rows if r[ix["status"]] == "fail")
        from_json = sorted(key_json(f) for f in self.findings if f["status"] == "fail")
        self.assertEqual(from_csv, from_json)
        self.assertTrue(from_json)

    def test_csv_cells_never_start_a_formula(self):
        _, rows = parse_csv(self.csv_text)
        for row in rows:
            for cell in row:
                self.assertFalse(cell.startswith(FORMULA_LEADERS), cell)


class RemediationChanges(unittest.TestCase):
    """A failing finding's remediation.change is the exact change a fix would make."""

    def test_missing_permissions_are_granted_in_their_own_category(self):
        with tempfile.TemporaryDirectory() as tmp:
            r, rep = audit_json(demo_path(), cwd=tmp)
        self.assertIsNotNone(rep, r)
        seen = set()
        for f in rep["findings"]:
            if f["status"] != "fail" or f["rule"] not in ("KVA-BKP-001", "KVA-BKP-002"):
                continue
            change = f["remediation"]["change"]
            self.assertEqual(change["operation"], "PUT accessPolicies/add")
            perms = change["accessPolicy"]["permissions"]
            category = "secrets" if f["rule"] == "KVA-BKP-001" else "keys"
            self.assertEqual(list(perms), [category], f)
            self.assertTrue(set(perms[category]) <= {"get", "list", "backup"})
            seen.add(category)
        self.assertEqual(seen, {"secrets", "keys"})


class SuppressionsAndDiff(unittest.TestCase):
    """--suppressions turns accepted failures into `suppressed`; `kvaudit diff` alerts only on new ones."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="kvaudit-e2e-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def supp(self, expires, rule="KVA-BKP-003", resource="/vaults/kv-nw-dev-neu$"):
        path = os.path.join(self.dir, "supp.json")
        write_json(path, {"kind": "kvaudit.suppressions", "version": 1, "suppressions": [
            {"rule": rule, "resource": resource, "reason": "dev vault", "owner": "platform", "expires": expires}]})
        return path

    def test_a_suppressed_failure_stays_listed_and_does_not_count(self):
        r, base = audit_json(demo_path(), cwd=self.dir)
        r, rep = audit_json(demo_path(), "--suppressions", self.supp("2099-12-31"), cwd=self.dir)
        self.assertEqual(r.rc, 1)
        sup = [f for f in rep["findings"] if f["status"] == "suppressed"]
        self.assertEqual([(f["rule"], f["vaultName"]) for f in sup], [("KVA-BKP-003", "kv-nw-dev-neu")])
        self.assertEqual(sup[0]["suppression"]["owner"], "platform")
        self.assertEqual(rep["summary"]["byStatus"]["suppressed"], 1)
        self.assertEqual(rep["summary"]["failing"], base["summary"]["failing"] - 1)

    def test_an_expired_suppression_warns_and_suppresses_nothing(self):
        r, rep = audit_json(demo_path(), "--suppressions", self.supp("2020-01-01"), cwd=self.dir)
        self.assertIn("expired on 2020-01-01", r.err)
        self.assertEqual(rep["summary"]["byStatus"]["suppressed"], 0)
        hit = [f for f in rep["findings"] if f.get("suppression")]
        self.assertTrue(hit and hit[0]["suppression"]["expired"] and hit[0]["status"] == "fail")

    def test_bad_suppressions_are_bad_input(self):
        r = kv("audit", demo_path(), "--suppressions", self.supp("2099-12-31", rule="KVA-NOPE-001"),
               "--out", "-", "-q", cwd=self.dir)
        one_line_error(self, r, "supp.json", "KVA-NOPE-001")
        r = kv("audit", demo_path(), "--suppressions", self.supp("2099-12-31", resource="(x"),
               "--out", "-", "-q", cwd=self.dir)
        one_line_error(self, r, "supp.json", "pattern")

    def test_diff_alerts_on_new_failures_only(self):
        old = os.path.join(self.dir, "old.json")
        new = os.path.join(self.dir, "new.json")
        self.assertEqual(kv("audit", demo_path(), "--suppressions", self.supp("2099-12-31"), "--out", old,
                            "-q", cwd=self.dir).rc, 1)
        self.assertEqual(kv("audit", demo_path(), "--out", new, "-q", cwd=self.dir).rc, 1)
        same = kv("diff", old, old, cwd=self.dir)
        self.assertEqual(same.rc, 0, same.err)
        self.assertIn("new failing findings (0)", same.out)
        grew = kv("diff", old, new, "--format", "json", cwd=self.dir)
        self.assertEqual(grew.rc, 1, grew.err)
        d = json.loads(grew.out)
        self.assertEqual([f["rule"] for f in d["new"]], ["KVA-BKP-003"])
        self.assertEqual(d["resolved"], [])
        self.assertEqual(kv("diff", old, new, "--fail-on", "medium", cwd=self.dir).rc, 0)
        shrank = kv("diff", new, old, cwd=self.dir)
        self.assertEqual(shrank.rc, 0)
        self.assertIn("resolved (1)", shrank.out)
        bad = kv("diff", old, demo_path(), cwd=self.dir)
        self.assertEqual(bad.rc, 2)

    def test_diff_identity_ignores_case_a_trailing_slash_and_the_message(self):
        """diff hashes findings on the identity it compares (rule, subject, vm, vault, tenant): what is the
        same finding must hash alike, and what is not must stay apart."""
        old = os.path.join(self.dir, "old.json")
        self.assertEqual(kv("audit", demo_path(), "--out", old, "-q", cwd=self.dir).rc, 1)
        with open(old) as f:
            rep = json.load(f)
        fails = [f for f in rep["findings"] if f["status"] == "fail"]
        self.assertGreater(len(fails), 4)
        for i, f in enumerate(fails):
            f["message"] = "reworded " + f["message"]
            f["rule"] = f["rule"].lower() if i % 2 else f["rule"]
            f["status"] = "FAIL" if i % 3 == 0 else f["status"]
            if f.get("vm"):
                f["vm"] = f["vm"].upper() + ("/" if i % 2 else "")
            if f.get("vault"):
                f["vault"] = f["vault"] + "/"
        moved = json.loads(json.dumps(fails[0]))
        moved["vault"] = moved["vault"] + "x" if moved.get("vault") else "/subscriptions/x"
        gone = json.loads(json.dumps(fails[1]))
        gone.pop("tenant", None)                   # absent is not ""
        gone["tenant"] = None
        rep["findings"] = list(reversed(rep["findings"])) + [moved, gone]
        new = os.path.join(self.dir, "new.json")
        with open(new, "w") as f:
            json.dump(rep, f)
        d = json.loads(kv("diff", old, new, "--format", "json", cwd=self.dir).out)
        self.assertEqual([f["message"] for f in d["new"]], [moved["message"], gone["message"]])
        self.assertEqual(d["resolved"], [])
        self.assertEqual(len(d["unchanged"]), len(fails))
        # kept in the new report's order
        self.assertEqual([f["message"] for f in d["unchanged"]],
                         [f["message"] for f in rep["findings"][:-2] if f["status"].lower() == "fail"])

    def test_audit_with_a_baseline_fails_only_on_new_findings(self):
        old = os.path.join(self.dir, "old.json")
        self.assertEqual(kv("audit", demo_path(), "--out", old, "-q", cwd=self.dir).rc, 1)
        same = kv("audit", demo_path(), "--baseline", old, "--out", os.path.join(self.dir, "a.json"), cwd=self.dir)
        self.assertEqual(same.rc, 0, same.err)
        self.assertIn("0 new failing finding", same.err)
        older = os.path.join(self.dir, "older.json")
        self.assertEqual(kv("audit", demo_path(), "--suppressions", self.supp("2099-12-31"), "--out", older, "-q",
                            cwd=self.dir).rc, 1)
        grew = kv("audit", demo_path(), "--baseline", older, "--out", os.path.join(self.dir, "b.json"), "-q",
                  cwd=self.dir)
        self.assertEqual(grew.rc, 1)
        bad = kv("audit", demo_path(), "--baseline", demo_path(), "--out", "-", "-q", cwd=self.dir)
        one_line_error(self, bad, "kvaudit.report")


class ConfigFile(unittest.TestCase):
    """--config / $KVAUDIT_CONFIG supply defaults; flags win; `config check` validates."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="kvaudit-e2e-")
        self.dir = self.tmp.name
        self.cfg = os.path.join(self.dir, "kvaudit.json")
        write_json(self.cfg, {"kind": "kvaudit.config", "version": 1, "formats": ["json", "csv"],
                              "out": "reports/", "failOn": "critical"})

    def tearDown(self):
        self.tmp.cleanup()

    def test_settings_come_from_the_file_relative_to_it(self):
        r = kv("audit", demo_path(), "--config", self.cfg, "-q", cwd="/")
        # failOn critical: the demo's critical failures are its missing BEK secret and KEK (KVA-RST-001/005)
        self.assertEqual(r.rc, 1, r.err)
        names = sorted(os.listdir(os.path.join(self.dir, "reports")))
        self.assertEqual([n.rsplit(".", 1)[1] for n in names], ["csv", "json"])
        with open(os.path.join(self.dir, "reports", names[1]), encoding="utf-8") as f:
            rep = json.load(f)
        self.assertEqual(rep["scan"]["failOn"], "critical")
        crit = {x["rule"] for x in rep["findings"] if x["status"] == "fail" and x["severity"] == "critical"}
        self.assertTrue({"KVA-RST-001", "KVA-RST-005"} <= crit, crit)

    def test_flags_win_over_the_file(self):
        r = kv("audit", demo_path(), "--config", self.cfg, "--fail-on", "low", "--format", "json",
               "--out", os.path.join(self.dir, "r.json"), "-q", cwd=self.dir)
        self.assertEqual(r.rc, 1, r.err)

    def test_config_check_names_an_unknown_setting(self):
        write_json(self.cfg, {"kind": "kvaudit.config", "fromats": "json"})
        r = kv("config", "check", self.cfg, cwd=self.dir)
        one_line_error(self, r, "kvaudit.json", "$.fromats")
        ok = os.path.join(self.dir, "ok.json")
        write_json(ok, {"kind": "kvaudit.config", "version": 1, "failOn": "high"})
        self.assertEqual(kv("config", "check", ok, cwd=self.dir).rc, 0)

    def test_expiry_warning_from_the_file_and_the_flag_wins(self):
        def fails(*extra):
            r = kv("audit", demo_path(), "--as-of", "2026-11-28T12:00:00Z", "--out", "-", "-q", *extra,
                   cwd=self.dir)
            self.assertEqual(r.rc, 1, r.err)
            return {(f["rule"], f["vmName"]) for f in json.loads(r.out)["findings"] if f["status"] == "fail"}

        write_json(self.cfg, {"kind": "kvaudit.config", "version": 1, "expiryWarning": "20d"})
        # nw-erp-db01's BEK expires 21.5 days after --as-of: inside the default 30 days, not inside 20
        self.assertIn(("KVA-RST-004", "nw-erp-db01"), fails())
        self.assertNotIn(("KVA-RST-004", "nw-erp-db01"), fails("--config", self.cfg))
        self.assertIn(("KVA-RST-004", "nw-erp-db01"), fails("--config", self.cfg, "--expiry-warning", "30d"))

    def test_each_setting_is_checked_as_its_flag_is(self):
        bad = [({"engine": "sql"}, "$.engine: expected graph or arm"),
               ({"concurrency": 0}, "$.concurrency: expected a number from 1 to 256"),
               ({"concurrency": 257}, "$.concurrency: expected a number from 1 to 256"),
               ({"concurrency": 2.5}, "$.concurrency: expected a number from 1 to 256"),
               ({"concurrency": "16"}, "$.concurrency: expected a number from 1 to 256"),
               ({"expiryWarning": "30x"}, "$.expiryWarning: expected a duration such as 30d or 12h (at most 3650d)"),
               ({"expiryWarning": "3651d"}, "$.expiryWarning: expected a duration"),
               ({"engine": ""}, "$.engine: expected a non-empty string, got an empty one")]
        for setting, words in bad:
            write_json(self.cfg, dict({"kind": "kvaudit.config", "version": 1}, **setting))
            one_line_error(self, kv("config", "check", self.cfg, cwd=self.dir), "kvaudit.json", words)
            # a flag does not excuse a bad setting
            one_line_error(self, kv("audit", demo_path(), "--config", self.cfg, "--expiry-warning", "30d",
                                    "--out", "-", cwd=self.dir), words)
        write_json(self.cfg, {"kind": "kvaudit.config", "version": 1, "engine": "arm", "concurrency": 256,
                              "expiryWarning": "12h"})
        self.assertEqual(kv("config", "check", self.cfg, cwd=self.dir).rc, 0)


class LogFormat(unittest.TestCase):
    """--log-format json (or KVAUDIT_LOG_FORMAT=json) turns stderr lines into JSON lines."""

    def test_errors_and_warnings_become_json_lines(self):
        with tempfile.TemporaryDirectory() as tmp:
            r = kv("audit", os.path.join(tmp, "missing.json"), "--log-format", "json", cwd=tmp)
            self.assertEqual(r.rc, 2)
            lines = r.err.strip().splitlines()
            self.assertEqual(len(lines), 1, r.err)
            rec = json.loads(lines[0])
            self.assertEqual(rec["level"], "error")
            self.assertIn("missing.json", rec["msg"])
            self.assertRegex(rec["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

    def test_a_bad_log_format_is_bad_usage(self):
        r = kv("--log-format", "xml", "rules", "list")
        self.assertEqual(r.rc, 2)
        self.assertIn("--log-format", r.err)


class DemoOptions(unittest.TestCase):
    """Output options, --fail-on, -q, determinism, overrides."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="kvaudit-e2e-")
        self.d = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_default_output_is_a_stamped_json_file_in_the_current_directory(self):
        r = kv("audit", demo_path(), cwd=self.d)
        self.assertEqual(r.rc, 1, r)
        files = files_in(self.d)
        self.assertEqual(len(files), 1, files)
        self.assertRegex(files[0], STAMP_RE)
        self.assertTrue(files[0].endswith(".json"))
        with open(os.path.join(self.d, files[0]), encoding="utf-8") as f:
            rep = json.load(f)
        self.assertEqual(rep["kind"], "kvaudit.report")
        self.assertEqual(select(rep["findings"], status="pass"), [], "pass findings listed without --include-pass")
        self.assertGreater(rep["summary"]["byStatus"]["pass"], 0)

    def test_out_dash_writes_json_to_stdout_only(self):
        r = kv("audit", demo_path(), "--out", "-", "-q", cwd=self.d)
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(json.loads(r.out)["kind"], "kvaudit.report")
        self.assertEqual(files_in(self.d), [])

    def test_out_dash_csv(self):
        r = kv("audit", demo_path(), "--format", "csv", "--out", "-", "-q", cwd=self.d)
        self.assertEqual(r.rc, 1, r)
        header, rows = parse_csv(r.out)
        self.assertEqual(header, CSV_HEADER)
        self.assertTrue(rows)
        statuses = {row[header.index("status")] for row in rows}
        self.assertIn("fail", statuses)
        self.assertNotIn("pass", statuses, "pass rows listed without --include-pass")

    def test_out_file(self):
        out = os.path.join(self.d, "my-report.json")
        r = kv("audit", demo_path(), "--out", out, "-q", cwd=self.d)
        self.assertEqual(r.rc, 1, r)
        with open(out, encoding="utf-8") as f:
            self.assertEqual(json.load(f)["kind"], "kvaudit.report")

    def test_out_dash_with_two_formats_is_usage_error(self):
        r = kv("audit", demo_path(), "--format", "json,csv", "--out", "-", cwd=self.d)
        one_line_error(self, r)
        self.assertEqual(r.out, "")

    def test_unknown_format_is_usage_error(self):
        one_line_error(self, kv("audit", demo_path(), "--format", "docx", "--out", "-", cwd=self.d))

    def test_quiet_prints_nothing_on_stderr(self):
        r = kv("audit", demo_path(), "--out", "-", "-q", cwd=self.d)
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(r.err, "")

    def test_fail_on_critical(self):
        _, rep = audit_json(demo_path(), "--include-pass", cwd=self.d)
        crit = [f for f in rep["findings"] if f["status"] == "fail" and f["severity"] == "critical"]
        r, rep2 = audit_json(demo_path(), "--fail-on", "critical", cwd=self.d)
        self.assertEqual(r.rc, 1 if crit else 0, r)
        self.assertEqual(rep2["scan"]["failOn"], "critical")
        self.assertEqual(rep2["summary"]["exitCode"], r.rc)
        self.assertEqual(rep2["summary"]["failing"], len(crit))

    def test_fail_on_info_and_case(self):
        r, _ = audit_json(demo_path(), "--fail-on", "info", cwd=self.d)
        self.assertEqual(r.rc, 1, r)
        r, _ = audit_json(demo_path(), "--fail-on", "HIGH", cwd=self.d)
        self.assertIn(r.rc, (0, 1), r)

    def test_fail_on_unknown_severity_is_usage_error(self):
        one_line_error(self, kv("audit", demo_path(), "--fail-on", "severe", cwd=self.d))
        self.assertEqual(files_in(self.d), [])

    def test_same_estate_same_findings(self):
        _, a = audit_json(demo_path(), "--include-pass", cwd=self.d)
        _, b = audit_json(demo_path(), "--include-pass", cwd=self.d)
        self.assertEqual(a["findings"], b["findings"])
        self.assertEqual(a["summary"], b["summary"])

    def test_backup_sp_object_id_override(self):
        # A snapshot that could not look Backup Management Service up in nwlegacy ...
        estate = load_demo()
        for t in estate["tenants"]:
            if t["tenantId"] == T_OLD:
                t["backupManagementService"] = {"status": "unknown", "appId": t["backupManagementService"]["appId"]}
        path = write_json(os.path.join(self.d, "sp-unknown.json"), estate)
        r, rep = audit_json(path, "--include-pass", cwd=self.d)
        self.assertEqual(r.rc, 3, r)
        self.assertNotIn("pass", [f["status"] for f in select(rep["findings"], rule="BKP-005", tenant=T_OLD)])
        self.assertNotIn("pass", [f["status"] for f in select(rep["findings"], vault="kv-nwold-archive-weu",
                                                              rule="BKP-001")])
        # ... is completed by --backup-sp-object-id.
        oid = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
        r, rep = audit_json(path, "--include-pass", "--backup-sp-object-id", "%s=%s" % (T_OLD, oid), cwd=self.d)
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(select(rep["findings"], status="error"), [])
        f = select(rep["findings"], rule="BKP-005", tenant=T_OLD)
        self.assertEqual([x["status"] for x in f], ["pass"])
        # The override names the principal; the vault still has no entry for it.
        f = select(rep["findings"], rule="BKP-001", vault="kv-nwold-archive-weu")
        self.assertEqual([x["status"] for x in f], ["fail"])

    def test_backup_sp_object_id_malformed(self):
        one_line_error(self, kv("audit", demo_path(), "--backup-sp-object-id", "not-a-pair", cwd=self.d))

    def test_secret_never_echoed_anywhere(self):
        blob = []
        for args in (["audit", demo_path(), "--include-pass", "-v", "--out", "-"],
                     ["audit", demo_path(), "--include-pass", "-v", "--format", "csv", "--out", "-"],
                     ["inventory", demo_path()],
                     ["inventory", demo_path(), "--format", "csv"],
                     ["inventory", demo_path(), "--format", "json"]):
            r = kv(*args, cwd=self.d)
            self.assertIn(r.rc, (0, 1), r)
            blob.append(r.out + r.err)
        self.assertNotIn(FAKE_SECRET, "".join(blob))


# ---------------------------------------------------------------- variants of the demo
def by_name(items, name):
    for x in items:
        if x.get("name") == name:
            return x
    raise KeyError(name)


def ext_of(estate, vm_name, ext_type):
    """The extension of type ext_type of VM vm_name, embedded or listed apart."""
    vm = by_name(estate["virtualMachines"], vm_name)
    for x in (vm.get("resources") or []) + estate.get("vmExtensions", []):
        if x["id"].lower().startswith(vm["id"].lower() + "/extensions/") and \
                x["properties"]["type"].lower() == ext_type.lower():
            return x
    raise KeyError((vm_name, ext_type))


class DetectionVariants(unittest.TestCase):
    """Small edits of the demo that must (or must not) change the verdicts (AZURE-FACTS a, b, c, h)."""

    def audit(self, mutate):
        with tempfile.TemporaryDirectory(prefix="kvaudit-e2e-") as d:
            estate = load_demo()
            mutate(estate)
            path = write_json(os.path.join(d, "variant.json"), estate)
            r, rep = audit_json(path, "--include-pass", cwd=d)
        self.assertIn(r.rc, (0, 1), r)
        self.assertIsNotNone(rep, r)
        self.assertEqual(select(rep["findings"], status="error"), [])
        return rep

    def status(self, rep, rule, **where):
        return [f["status"] for f in select(rep["findings"], rule=rule, **where)]

    def inv_names(self, rep):
        return {v["name"] for v in rep["inventory"]["vms"]}

    def test_windows_1x_is_legacy_even_without_aad_client_id(self):
        def m(e):
            del ext_of(e, "nw-legacy-app01", "AzureDiskEncryption")["properties"]["settings"]["AADClientID"]
            d = [x for x in e["disks"] if x["name"].startswith("nw-legacy-app01_OsDisk")][0]
            d["properties"]["encryptionSettingsCollection"]["encryptionSettingsVersion"] = "1.1"
        self.assertEqual(self.status(self.audit(m), "LIM-005", vm="nw-legacy-app01"), ["fail"])

    def test_linux_0x_is_legacy_and_linux_1x_is_not(self):
        def m(e):
            ext_of(e, "nwold-archive01", "AzureDiskEncryptionForLinux")["properties"]["typeHandlerVersion"] = "0.1"
        rep = self.audit(m)
        self.assertEqual(self.status(rep, "LIM-005", vm="nwold-archive01"), ["fail"])
        self.assertEqual(self.status(rep, "LIM-005", vm="nw-web01"), ["pass"])

    def test_extension_match_is_case_insensitive_and_by_type_not_name(self):
        def m(e):
            x = ext_of(e, "nwlog-wms01", "AzureDiskEncryptionForLinux")
            x["properties"]["publisher"] = "microsoft.azure.security"
            x["properties"]["type"] = "azurediskencryptionforlinux"
            x["id"] = x["id"].rsplit("/", 1)[0] + "/ADE"
            x["name"] = "ADE"
        rep = self.audit(m)
        self.assertIn("nwlog-wms01", self.inv_names(rep))
        self.assertEqual(self.status(rep, "BKP-001", vm="nwlog-wms01", vault="kv-nwlog-data-eus"), ["fail"])

    def test_disable_encryption_on_extension_only_vm_means_not_ade(self):
        def m(e):
            x = ext_of(e, "nwlog-wms01", "AzureDiskEncryptionForLinux")
            x["properties"]["settings"] = {"VolumeType": "All", "EncryptionOperation": "DisableEncryption",
                                           "SequenceVersion": "7d0e3b9a-51c4-4f7e-8a26-c1b9e04d5f83"}
        rep = self.audit(m)
        self.assertNotIn("nwlog-wms01", self.inv_names(rep))
        self.assertEqual(select(rep["findings"], vm="nwlog-wms01"), [])

    def test_disabled_disk_settings_are_not_ade(self):
        def m(e):
            d = [x for x in e["disks"] if x["name"].startswith("nw-test01_OsDisk")][0]
            d["properties"]["encryptionSettingsCollection"]["encryptionSettings"] = [{
                "diskEncryptionKey": {"sourceVault": {"id": by_name(e["vaults"], "kv-nw-prod-weu")["id"]},
                                      "secretUrl": "https://kv-nw-prod-weu.vault.azure.net/secrets/"
                                                   "3C1F7B0A-52D4-4E8B-9A61-D07E2C5F8B19/5c2e7a9b1d3f4e6a8b0c2d4e6f8a0b1c"}}]
        rep = self.audit(m)
        self.assertNotIn("nw-test01", self.inv_names(rep))
        self.assertEqual(select(rep["findings"], vm="nw-test01"), [])

    def test_ids_compare_case_insensitively_and_ignore_a_trailing_slash(self):
        def m(e):
            d = [x for x in e["disks"] if x["name"].startswith("nw-erp-app01_OsDisk")][0]
            es = d["properties"]["encryptionSettingsCollection"]["encryptionSettings"][0]
            es["diskEncryptionKey"]["sourceVault"]["id"] = es["diskEncryptionKey"]["sourceVault"]["id"].upper() + "/"
            for p in by_name(e["vaults"], "kv-nw-prod-weu")["properties"]["accessPolicies"]:
                p["objectId"] = p["objectId"].upper()
        rep = self.audit(m)
        self.assertEqual(rep["summary"]["subjects"]["binding"], 14)
        self.assertEqual(self.status(rep, "BKP-001", vm="nw-erp-app01", vault="kv-nw-prod-weu"), ["pass"])

    def test_all_in_any_case_is_every_permission(self):
        def m(e):
            v = by_name(e["vaults"], "kv-nwlog-ops-eus")
            for p in v["properties"]["accessPolicies"]:
                if p["objectId"] == "c4a8e2f6-93b1-4d07-8e5a-6f1c2d9b0e37":
                    p["permissions"]["secrets"] = ["All"]
        rep = self.audit(m)
        self.assertEqual(self.status(rep, "BKP-001", vm="nwlog-tms01", vault="kv-nwlog-ops-eus"), ["pass"])

    def test_region_names_are_normalised(self):
        def m(e):
            by_name(e["vaults"], "kv-nw-prod-weu")["location"] = "West Europe"
        rep = self.audit(m)
        self.assertEqual(self.status(rep, "LIM-002", vm="nw-erp-app01", vault="kv-nw-prod-weu"), ["pass"])

    def test_absent_vault_flags_take_their_documented_defaults(self):
        def m(e):
            p = by_name(e["vaults"], "kv-nw-prod-weu")["properties"]
            del p["enableSoftDelete"]        # absent: the service default, on
            del p["networkAcls"]             # absent: Allow
            p = by_name(e["vaults"], "kv-nw-shared-weu")["properties"]
            del p["enabledForDiskEncryption"]   # absent: false
        rep = self.audit(m)
        self.assertEqual(self.status(rep, "VLT-002", vault="kv-nw-prod-weu"), ["pass"])
        self.assertEqual(self.status(rep, "VLT-003", vault="kv-nw-prod-weu"), ["pass"])
        self.assertEqual(self.status(rep, "VLT-001", vault="kv-nw-shared-weu"), ["fail"])

    def test_role_scope_must_contain_the_vault_at_a_segment_boundary(self):
        def m(e, scope):
            ra = copy.deepcopy([x for x in e["roleAssignments"]
                                if x["properties"]["roleDefinitionId"].endswith("00482a5a-887f-4fb3-b363-3b7fe8e74483")
                                and x["properties"]["principalId"] == "7e5c3a91-0d2f-4b6e-a8c4-19f2e6d0b3a5"][0])
            ra["properties"]["principalId"] = "c4a8e2f6-93b1-4d07-8e5a-6f1c2d9b0e37"
            ra["properties"]["roleDefinitionId"] = ("/subscriptions/6a0f9e2c-4b75-4e13-8d29-c5b1f7a3e6d8/providers/"
                                                    "Microsoft.Authorization/roleDefinitions/"
                                                    "00482a5a-887f-4fb3-b363-3b7fe8e74483")
            ra["properties"]["scope"] = scope
            ra["id"] = scope + "/providers/Microsoft.Authorization/roleAssignments/" + ra["name"]
            e["roleAssignments"].append(ra)
        sub = "/subscriptions/6a0f9e2c-4b75-4e13-8d29-c5b1f7a3e6d8"
        rep = self.audit(lambda e: m(e, sub + "/resourceGroups/rg-nwlog-rpt"))      # a prefix, not a parent
        self.assertEqual(self.status(rep, "BKP-004", vm="nwlog-rpt01", vault="kv-nwlog-rbac-eus"), ["fail"])
        rep = self.audit(lambda e: m(e, sub.replace("subscriptions", "Subscriptions")))
        self.assertEqual(self.status(rep, "BKP-004", vm="nwlog-rpt01", vault="kv-nwlog-rbac-eus"), ["pass"])

    def test_protected_item_joined_by_source_resource_id(self):
        def m(e):
            item = copy.deepcopy([i for i in e["backupProtectedItems"]
                                  if i["properties"]["friendlyName"] == "nw-erp-app01"][0])
            vm = by_name(e["virtualMachines"], "nw-bi01")
            item["id"] = item["id"].replace("nw-erp-app01", "nw-bi01").replace("rg-nw-erp-weu", "rg-nw-bi-weu")
            item["name"] = item["name"].replace("nw-erp-app01", "nw-bi01").replace("rg-nw-erp-weu", "rg-nw-bi-weu")
            item["properties"]["friendlyName"] = "nw-bi01"
            del item["properties"]["virtualMachineId"]
            item["properties"]["sourceResourceId"] = vm["id"].upper()
            e["backupProtectedItems"].append(item)
        rep = self.audit(m)
        self.assertEqual(self.status(rep, "VM-002", vm="nw-bi01"), ["pass"])
        self.assertEqual(self.status(rep, "LIM-004", vm="nw-bi01"), ["pass"])


class FormulaInjection(unittest.TestCase):
    NAME = "=cmd|' /C calc'!A0"

    def test_vm_name_formula_is_neutralised_in_csv_but_kept_in_json(self):
        with tempfile.TemporaryDirectory(prefix="kvaudit-e2e-") as d:
            estate = load_demo()
            for vm in estate["virtualMachines"]:
                if vm["name"] == "nwlog-tms01":
                    vm["name"] = self.NAME
            path = write_json(os.path.join(d, "evil.json"), estate)
            r = kv("audit", path, "--format", "json,csv", "--out", d, "--include-pass", "-q", cwd=d)
            self.assertEqual(r.rc, 1, r)
            files = [f for f in files_in(d) if f.startswith("kvaudit-")]
            with open(os.path.join(d, [f for f in files if f.endswith(".csv")][0]), encoding="utf-8",
                      newline="") as f:
                header, rows = parse_csv(f.read())
            with open(os.path.join(d, [f for f in files if f.endswith(".json")][0]), encoding="utf-8") as f:
                rep = json.load(f)
            ix = header.index("vm_name")
            evil = [row for row in rows if "cmd|" in row[ix]]
            self.assertTrue(evil, "the renamed VM has no findings in the CSV")
            for row in evil:
                self.assertEqual(row[ix], "'" + self.NAME)
            for row in rows:
                for cell in row:
                    self.assertFalse(cell.startswith(FORMULA_LEADERS), cell)
            self.assertTrue(select(rep["findings"], vm=self.NAME, rule="BKP-001", status="fail"))


# ---------------------------------------------------------------- partial estate
class PartialEstate(unittest.TestCase):
    MISSING = "kv-nw-bi-weu"

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="kvaudit-e2e-")
        cls.res, cls.report = audit_json(partial_path(), "--include-pass", "--include-skipped", cwd=cls.tmp.name)
        with open(partial_path(), encoding="utf-8") as f:
            cls.estate = json.load(f)
        cls.missing_id = cls.estate["errors"][0]["scope"]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.assertIsNotNone(self.report, self.res)

    def test_estate_is_as_designed(self):
        names = {v["name"] for v in self.estate["vaults"]}
        self.assertNotIn(self.MISSING, names)
        self.assertTrue(self.missing_id.endswith("/" + self.MISSING))
        self.assertNotIn("backupProtectedItems", self.estate)
        for vm in self.estate["virtualMachines"]:
            self.assertNotIn("instanceView", vm["properties"])

    def test_exit_3(self):
        self.assertEqual(self.res.rc, 3, self.res)
        self.assertEqual(self.report["summary"]["exitCode"], 3)
        self.assertIs(self.report["scan"]["complete"], False)

    def test_exit_3_wins_over_fail(self):
        self.assertTrue(select(self.report["findings"], status="fail"), "expected failing findings too")

    def test_error_findings_name_the_missing_vault(self):
        errs = select(self.report["findings"], status="error")
        self.assertTrue(errs)
        naming = [f for f in errs
                  if (f["vault"] or "").lower() == self.missing_id.lower()
                  or self.MISSING in (f["reason"] or "") or self.MISSING in (f["message"] or "")]
        self.assertTrue(naming, errs)
        for f in naming:
            self.assertTrue(f["reason"], f)

    def test_missing_vault_never_passes(self):
        # DESIGN.md: rules on resources that could not be read are error, never pass.  LIM-001 is
        # the exception: both subscriptions are in the ARM IDs, which the VM's disks do record.
        for f in self.report["findings"]:
            if (f["vault"] or "").lower() == self.missing_id.lower() and short(f["rule"]) != "LIM-001":
                self.assertNotEqual(f["status"], "pass", f)

    def test_report_lists_the_estate_error(self):
        scopes = [e["scope"].lower() for e in self.report["errors"]]
        self.assertIn(self.missing_id.lower(), scopes)
        e = self.report["errors"][0]
        self.assertEqual(e["status"], 403)
        self.assertEqual(e["code"], "AuthorizationFailed")

    def test_agent_and_backup_rules_are_skipped(self):
        for vm in ("nw-bi01", "nw-dev-build01"):
            for rule in ("VM-001", "VM-002"):
                with self.subTest(vm=vm, rule=rule):
                    got = select(self.report["findings"], rule=rule, vm=vm)
                    self.assertEqual([g["status"] for g in got], ["skipped"])
                    self.assertTrue(got[0]["reason"])

    def test_readable_vault_still_judged(self):
        f = select(self.report["findings"], rule="BKP-001", vm="nw-dev-build01", vault="kv-nw-dev-neu")
        self.assertEqual([x["status"] for x in f], ["pass"])
        f = select(self.report["findings"], rule="VLT-001", vault="kv-nw-dev-neu")
        self.assertEqual([x["status"] for x in f], ["fail"])


# ---------------------------------------------------------------- bad input
class BadInput(unittest.TestCase):
    """Each bad estate: exit 2, exactly one stderr line naming the file, no report written."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="kvaudit-e2e-")
        self.d = self.tmp.name
        self.out = os.path.join(self.d, "out")
        os.mkdir(self.out)

    def tearDown(self):
        self.tmp.cleanup()

    def check(self, path, *needles, offset=False):
        r = kv("audit", path, "--out", self.out, cwd=self.d)
        line = one_line_error(self, r, os.path.basename(path.rstrip("/")), *needles)
        if offset:
            rest = line.replace(path, "").replace(os.path.basename(path), "")
            self.assertRegex(rest, r"\d", "expected a byte offset or position: " + line)
        self.assertEqual(files_in(self.out), [], "a report was written for bad input")
        return line

    def raw(self, name, data):
        p = os.path.join(self.d, name)
        with open(p, "wb") as f:
            f.write(data)
        return p

    def test_missing_file(self):
        self.check(os.path.join(self.d, "no-such-estate.json"))

    def test_directory(self):
        p = os.path.join(self.d, "estate-dir.json")
        os.mkdir(p)
        self.check(p)

    def test_empty_file(self):
        self.check(self.raw("empty.json", b""))

    def test_truncated_json(self):
        with open(demo_path(), "rb") as f:
            data = f.read()
        self.check(self.raw("truncated.json", data[: len(data) // 2]), offset=True)

    def test_invalid_json(self):
        self.check(self.raw("invalid.json", b'{"kind": "kvaudit.estate", "version": 1, "virtualMachines": [}\n'),
                   offset=True)

    def test_not_an_object(self):
        self.check(self.raw("array.json", b"[1, 2, 3]\n"))

    def test_wrong_kind(self):
        self.check(write_json(os.path.join(self.d, "kind.json"), {"kind": "kvaudit.report", "version": 1}), "kind")

    def test_wrong_version(self):
        self.check(write_json(os.path.join(self.d, "version.json"), {"kind": "kvaudit.estate", "version": 2}),
                   "version")

    def test_virtual_machines_not_an_array(self):
        self.check(write_json(os.path.join(self.d, "vms.json"),
                              {"kind": "kvaudit.estate", "version": 1, "virtualMachines": {"id": "x"}}),
                   "virtualMachines")

    def test_vm_id_is_a_number(self):
        estate = load_demo()
        estate["virtualMachines"][3]["id"] = 12345
        path = write_json(os.path.join(self.d, "vm-number.json"), estate)
        line = self.check(path, "virtualMachines")
        rest = line.replace(path, "").replace(os.path.basename(path), "")
        self.assertIn("3", rest, line)
        self.assertRegex(rest, r"\bid\b", line)

    def test_no_estate_argument(self):
        one_line_error(self, kv("audit", cwd=self.d))


# ---------------------------------------------------------------- rules
VALID_RULE = {
    "id": "NWT-NAM-001",
    "title": "ADE key vaults follow the kv-nw- naming convention",
    "severity": "low",
    "subject": "vault",
    "when": {"any": [{"fact": "vault.holdsBek", "eq": True}, {"fact": "vault.holdsKek", "eq": True}]},
    "require": {"fact": "vault.name", "regex": "^kv-nw-"},
    "message": "{{vault.name}} does not follow the kv-nw- naming convention",
    "remediation": {"text": "Recreate the vault with a conforming name, or add it to the exceptions list."},
    "references": ["https://wiki.northwindtraders.example/cloud/naming"],
}


def bad_rule(rid, require):
    r = copy.deepcopy(VALID_RULE)
    r["id"] = rid
    r["require"] = require
    return r


class Rules(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="kvaudit-e2e-")
        self.d = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def rules_dir(self, name, files):
        p = os.path.join(self.d, name)
        os.mkdir(p)
        for fname, obj in files.items():
            if isinstance(obj, str):
                with open(os.path.join(p, fname), "w", encoding="utf-8") as f:
                    f.write(obj)
            else:
                write_json(os.path.join(p, fname), obj)
        return p

    def test_rules_list(self):
        r = kv("rules", "list")
        self.assertEqual(r.rc, 0, r)
        lines = [l for l in r.out.splitlines() if l.strip()]
        self.assertEqual(len(lines), len(BUILTIN), r.out)
        for l in lines:
            self.assertRegex(l, r"\b(critical|high|medium|low|info)\b")
            self.assertRegex(l, r"\b(vm|vault|binding|tenant)\b")

    def test_rules_show(self):
        ids = [l.split()[0] for l in kv("rules", "list").out.splitlines() if l.strip()]
        for rid in ids:
            r = kv("rules", "show", rid)
            self.assertEqual(r.rc, 0, r)
            self.assertIn(rid, r.out)

    def test_rules_show_unknown(self):
        r = kv("rules", "show", "NOPE-999")
        self.assertNotEqual(r.rc, 0, r)

    def test_rules_check_valid(self):
        p = self.rules_dir("good", {"naming.json": VALID_RULE})
        r = kv("rules", "check", p)
        self.assertEqual(r.rc, 0, r)

    def test_rules_check_reports_each_bad_file(self):
        p = self.rules_dir("mixed", {
            "good.json": VALID_RULE,
            "bad-regex.json": bad_rule("NWT-BAD-001", {"fact": "vault.name", "regex": "^kv-(nw"}),
            "unknown-fact.json": bad_rule("NWT-BAD-002", {"fact": "vault.colour", "eq": "blue"}),
            "unknown-operator.json": bad_rule("NWT-BAD-003", {"fact": "vault.name", "matches": "^kv-"}),
            "not-json.json": "{ this is not json",
        })
        r = kv("rules", "check", p)
        self.assertEqual(r.rc, 2, r)
        lines = [l for l in (r.out + r.err).splitlines() if l.strip()]
        for bad in ("bad-regex.json", "unknown-fact.json", "unknown-operator.json", "not-json.json"):
            self.assertTrue([l for l in lines if bad in l], "%s not reported: %s" % (bad, lines))
        self.assertFalse([l for l in lines if "good.json" in l], lines)
        self.assertTrue([l for l in lines if "vault.colour" in l], lines)
        self.assertTrue([l for l in lines if "matches" in l], lines)

    def test_rules_check_missing_dir(self):
        r = kv("rules", "check", os.path.join(self.d, "nowhere"))
        self.assertEqual(r.rc, 2, r)

    def test_custom_rules_add_findings(self):
        p = self.rules_dir("custom", {"naming.json": VALID_RULE})
        r, rep = audit_json(demo_path(), "--include-pass", "--rules", p, cwd=self.d)
        self.assertEqual(r.rc, 1, r)
        got = select(rep["findings"], rule="NAM-001")
        self.assertEqual({f["vaultName"]: f["status"] for f in got},
                         {v: ("pass" if v.startswith("kv-nw-") else "fail") for v in ADE_VAULTS})
        self.assertEqual(rep["tool"]["rules"], len(BUILTIN) + 1)
        f = select(rep["findings"], rule="NAM-001", vault="kv-nwlog-ops-eus")[0]
        self.assertEqual(f["message"], "kv-nwlog-ops-eus does not follow the kv-nw- naming convention")
        self.assertEqual(f["severity"], "low")

    def test_custom_rule_with_duplicate_id_is_rejected(self):
        first = kv("rules", "list").out.split()[0]
        p = self.rules_dir("dup", {"dup.json": dict(VALID_RULE, id=first)})
        r = kv("audit", demo_path(), "--rules", p, "--out", "-", cwd=self.d)
        one_line_error(self, r)

    def test_custom_rules_dir_with_bad_rule_is_rejected(self):
        p = self.rules_dir("bad", {"bad.json": bad_rule("NWT-BAD-002", {"fact": "vault.colour", "eq": "x"})})
        r = kv("audit", demo_path(), "--rules", p, "--out", "-", cwd=self.d)
        one_line_error(self, r, "bad.json")


# ---------------------------------------------------------------- inventory and CLI
class Inventory(unittest.TestCase):
    def test_table(self):
        r = kv("inventory", demo_path())
        self.assertEqual(r.rc, 0, r)
        for vm in ADE_VMS:
            self.assertIn(vm, r.out)
        self.assertNotIn("nw-test01", r.out)

    def test_csv(self):
        r = kv("inventory", demo_path(), "--format", "csv")
        self.assertEqual(r.rc, 0, r)
        header, rows = parse_csv(r.out)
        self.assertTrue(header)
        self.assertTrue(rows)
        text = r.out
        for vm in ADE_VMS:
            self.assertIn(vm, text)
        for row in rows:
            self.assertEqual(len(row), len(header), row)
            for cell in row:
                self.assertFalse(cell.startswith(FORMULA_LEADERS), cell)

    def test_json(self):
        r = kv("inventory", demo_path(), "--format", "json")
        self.assertEqual(r.rc, 0, r)
        inv = json.loads(r.out)
        self.assertEqual({v["name"] for v in inv["vms"]}, ADE_VMS)
        names = {v["name"] for v in inv["vaults"]}
        self.assertTrue(ADE_VAULTS <= names, ADE_VAULTS - names)
        byname = {v["name"]: v for v in inv["vaults"]}
        self.assertEqual(byname["kv-nw-rbac-weu"]["accessModel"], "rbac")
        self.assertEqual(byname["kv-nw-apps-weu"]["accessModel"], "accessPolicy")
        self.assertEqual(byname["kv-nwlog-ops-eus"]["callerUserType"], "Guest")
        self.assertEqual(byname["kv-nwold-archive-weu"]["backupSp"]["status"], "absent")

    def test_bad_format(self):
        one_line_error(self, kv("inventory", demo_path(), "--format", "xml"))

    def test_bad_input(self):
        with tempfile.TemporaryDirectory(prefix="kvaudit-e2e-") as d:
            p = os.path.join(d, "empty.json")
            open(p, "w").close()
            one_line_error(self, kv("inventory", p), "empty.json")


class Cli(unittest.TestCase):
    def test_version(self):
        r = kv("--version")
        self.assertEqual(r.rc, 0, r)
        self.assertRegex(r.out, r"\d+\.\d+\.\d+")

    def test_help(self):
        r = kv("--help")
        self.assertEqual(r.rc, 0, r)
        for word in ("audit", "inventory", "rules"):
            self.assertIn(word, r.out)

    def test_audit_help(self):
        r = kv("audit", "--help")
        self.assertEqual(r.rc, 0, r)
        for opt in ("--format", "--out", "--fail-on", "--include-pass", "--include-skipped", "--rules"):
            self.assertIn(opt, r.out)

    def test_unknown_command(self):
        one_line_error(self, kv("frobnicate"), "frobnicate")

    def test_unknown_flag(self):
        one_line_error(self, kv("audit", demo_path(), "--bogus-flag"), "--bogus-flag")

    def test_no_command(self):
        r = kv()
        self.assertEqual(r.rc, 2, r)


# ---------------------------------------------------------------- main
def main(argv):
    global KVAUDIT, SOURCE
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--kvaudit", default=os.environ.get("KVAUDIT"))
    ap.add_argument("--source", default=os.path.normpath(os.path.join(here, "..", "..")))
    opts, rest = ap.parse_known_args(argv[1:])
    SOURCE = os.path.abspath(opts.source)
    KVAUDIT = os.path.abspath(opts.kvaudit or os.path.join(SOURCE, "build", "kvaudit"))
    if not os.access(KVAUDIT, os.X_OK):
        print("test_offline: %s is not an executable" % KVAUDIT, file=sys.stderr)
        print("0 passed, 1 failed")
        return 1
    prog = unittest.main(argv=[argv[0]] + rest, exit=False, verbosity=2)
    res = prog.result
    failed = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
    passed = res.testsRun - failed - len(res.skipped)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or res.testsRun == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
