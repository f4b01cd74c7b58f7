#!/usr/bin/env python3
"""Fault injection: the real kvaudit binary against the Azure emulator while the emulator's
/_emulator/faults API throttles, fails, resets, stalls, corrupts and expires what kvaudit reads,
and while `fix --apply` is killed with SIGKILL at several points (then `kvaudit rollback`).

Run by ctest as: test_faults.py --kvaudit BIN --source REPO
The invariant everywhere: nothing is lost.  A scan either completes with exactly the findings of
a clean scan, or exits 3 with the failed scope in the report's errors and every finding that
depends on it `error` (never `pass`, never a changed verdict); a killed fix leaves a journal
whose every line parses and that `kvaudit rollback` turns into the emulator's exact prior state.
test_live.py's Faults class covers single 429/5xx/reset/expiry/malformed faults; this suite adds
storms, persistent faults, timeouts, page 3 of 5 and the killed fix.  Prints 'N passed, N failed'.
"""
import base64
import json
import os
import signal
import subprocess
import sys
import time
import unittest

from emulator_helper import ARGS, Emulator, kvaudit, main

SUB_PROD = "8b2e4f71-3c9a-4d6e-b1f0-7a5c2e9d4b13"      # 12 VMs, 17 disks, 6 vaults in the demo
VM_LIST = SUB_PROD + "/providers/Microsoft.Compute/virtualMachines$"


def load(path):
    with open(path) as f:
        return json.load(f)


def key(f):
    return (f["rule"], (f["vm"] or "").lower(), (f["vault"] or "").lower(), f["tenant"] or "")


def skiptoken(offset):
    """The emulator's $skiptoken for the page starting at offset (tests/emulator/emulator.py page())."""
    return base64.urlsafe_b64encode(json.dumps({"o": offset, "e": 0}).encode()).decode().rstrip("=")


class ScanFaults(unittest.TestCase):
    """One emulator; each test injects faults, scans, and compares with a clean scan."""

    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator()
        cls.clean_rc, cls.clean, _ = cls.scan(cls, "clean")
        cls.vm_ids = {f["vm"].lower() for f in load(os.path.join(cls.emu.dir, "clean.json"))["findings"] if f["vm"]}

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def scan(self, name, faults=None, timeout=300, engine="arm", extra=()):
        """Clears the log and faults, injects faults, scans; (rc, {key: status}, report).  The ARM
        engine by default: these faults are aimed at ARM's lists, pages and resource reads."""
        self.emu.clear()
        if faults:
            self.emu.fault(faults)
        r = kvaudit(self.emu, ["scan", "--engine", engine, "--include-pass", "--out", name + ".json", "-q"]
                    + list(extra), timeout=timeout)
        self.last = r
        rep = load(os.path.join(self.emu.dir, name + ".json"))
        return r.returncode, {key(f): f["status"] for f in rep["findings"]}, rep

    def assert_same_as_clean(self, rc, got, rep):
        self.assertEqual(rc, self.clean_rc, (self.last.stderr, rep["errors"]))
        self.assertTrue(rep["scan"]["complete"], rep["errors"])
        self.assertEqual(rep["errors"], [])
        self.assertEqual(got, self.clean)

    def assert_incomplete(self, rc, got, rep, scope_re, affected, some_error=None):
        """Exit 3, the failed scope in errors, every finding of an affected resource `error`, every
        other finding as in the clean scan or `error` (a rule may read what was lost), and
        nothing new that is not `error`.  some_error: at least one finding it selects is `error`."""
        import re
        self.assertEqual(rc, 3, self.last.stderr)
        self.assertFalse(rep["scan"]["complete"])
        self.assertTrue(any(re.search(scope_re, e["scope"], re.I) for e in rep["errors"]), rep["errors"])
        n_affected = 0
        for k, status in self.clean.items():
            if affected(k):
                n_affected += 1
                # skipped (not collected: e.g. key bundles without --data-plane) stays skipped
                self.assertEqual(got.get(k), "skipped" if status == "skipped" else "error", k)
            else:
                self.assertIn(got.get(k), (status, "error"), k)
        self.assertGreater(n_affected, 0) if some_error is None else \
            self.assertTrue(any(s == "error" for k, s in got.items() if some_error(k)), "no error finding")
        self.assertTrue(any(s == "error" for s in got.values()))
        # Nothing new passes: every finding that is not in the clean scan is an error.
        for k, status in got.items():
            if k not in self.clean:
                self.assertEqual(status, "error", k)

    def test_clean_scan_has_findings(self):
        self.assertEqual(self.clean_rc, 1)
        self.assertGreater(len(self.clean), 100)

    def test_429_storm_is_ridden_out(self):
        # Every list of the production subscription, the first VM reads and Graph throttled
        # (twice each, as far as kvaudit's 4 retries allow), Retry-After 1 s.
        lists = ["Microsoft.Compute/virtualMachines$", "Microsoft.Compute/disks$", "Microsoft.KeyVault/vaults$",
                 "Microsoft.RecoveryServices/vaults$", "roleAssignments$"]
        storm = [{"match": {"method": "GET", "pathRegex": SUB_PROD + "/providers/" + p},
                  "status": 429, "retryAfter": 1, "times": 2} for p in lists]
        storm += [{"match": {"method": "GET", "pathRegex": "virtualMachines/[^/]+$"}, "status": 429,
                   "retryAfter": 1, "times": 3},
                  {"match": {"method": "GET", "pathRegex": "^/graph/"}, "status": 429, "retryAfter": 1, "times": 2}]
        rc, got, rep = self.scan("storm", storm)
        self.assertGreaterEqual(sum(1 for x in self.emu.requests() if x["status"] == 429), 10)
        self.assert_same_as_clean(rc, got, rep)

    def test_endless_429_on_the_vault_list_makes_its_vaults_error(self):
        rc, got, rep = self.scan("storm-endless", {
            "match": {"pathRegex": SUB_PROD + "/providers/Microsoft.KeyVault/vaults$"},
            "status": 429, "retryAfter": 1, "times": 0})
        self.assert_incomplete(rc, got, rep, "Microsoft.KeyVault/vaults",
                               lambda k: SUB_PROD in k[2])

    def test_resource_graph_429_storm_is_ridden_out(self):
        # The default engine: Resource Graph queries throttled (Retry-After 1 s).
        _, clean, _ = self.scan("graph-clean", engine="graph")
        rc, got, rep = self.scan("graph-storm", [
            {"match": {"method": "POST", "pathRegex": "Microsoft.ResourceGraph/resources$"}, "status": 429,
             "retryAfter": 1, "times": 2},
            {"match": {"method": "POST", "pathRegex": "Microsoft.ResourceGraph/resources$"}, "status": 503,
             "retryAfter": 1, "times": 1}], engine="graph")
        self.assertEqual(sum(1 for x in self.emu.requests() if x["status"] in (429, 503)), 3)
        self.assertEqual(rc, self.clean_rc, self.last.stderr)
        self.assertTrue(rep["scan"]["complete"], rep["errors"])
        self.assertEqual(got, clean)

    def test_resource_graph_5xx_burst_is_retried(self):
        # A Resource Graph query only reads, so a 5xx without Retry-After is retried like a GET.
        _, clean, _ = self.scan("graph-clean3", engine="graph")
        rc, got, rep = self.scan("graph-5xx-burst", {"match": {"method": "POST", "pathRegex":
                                                              "Microsoft.ResourceGraph/resources$"},
                                                    "status": 503, "times": 2}, engine="graph")
        self.assertEqual(rc, self.clean_rc, (self.last.stderr, rep["errors"]))
        self.assertEqual(rep["errors"], [])
        self.assertEqual(got, clean)

    def test_resource_graph_5xx_without_retry_after_is_error_never_pass(self):
        # When every retry of a query fails too (1 + 4 attempts), the scan is incomplete, never guessed.
        _, clean, _ = self.scan("graph-clean2", engine="graph")
        rc, got, rep = self.scan("graph-5xx", {"match": {"method": "POST", "pathRegex":
                                                         "Microsoft.ResourceGraph/resources$"},
                                               "status": 503, "times": 5}, engine="graph")
        self.assertEqual(rc, 3, self.last.stderr)
        self.assertFalse(rep["scan"]["complete"])
        self.assertTrue(any(e["status"] == 503 for e in rep["errors"]), rep["errors"])
        # Never a pass that the clean scan does not have; a clean pass stays pass or turns error.
        # (New `fail`s do appear: KVA-BKP-003 on a vault whose KEK-holding VMs were not read;
        # docs/security.md, known limits.)
        for k, status in got.items():
            if status == "pass":
                self.assertEqual(clean.get(k), "pass", k)
        lost = tuple(e["scope"].lower() for e in rep["errors"] if e["scope"].count("/") == 2)
        for k, status in clean.items():
            if status == "pass":
                # VMs and vaults of a subscription whose query failed are not listed (known limits)
                gone = lost and (k[1].startswith(lost) or k[2].startswith(lost))
                allowed = ("pass", "error", None) if gone else ("pass", "error")
                self.assertIn(got.get(k), allowed, k)

    def test_5xx_burst_is_retried(self):
        rc, got, rep = self.scan("burst", [
            {"match": {"pathRegex": "Microsoft.Compute/disks$"}, "status": 500, "times": 2},
            {"match": {"pathRegex": "Microsoft.KeyVault/vaults$"}, "status": 502, "times": 2},
            {"match": {"pathRegex": "virtualMachines/[^/]+$"}, "status": 503, "times": 3},
            {"match": {"pathRegex": "roleAssignments"}, "status": 504, "times": 2}])
        self.assert_same_as_clean(rc, got, rep)

    def test_resets_mid_body_are_retried(self):
        rc, got, rep = self.scan("resets", [
            {"match": {"pathRegex": "virtualMachines/[^/]+$"}, "reset": True, "times": 3},
            {"match": {"pathRegex": "Microsoft.KeyVault/vaults$"}, "truncate": True, "times": 1}])
        self.assert_same_as_clean(rc, got, rep)

    def test_a_vm_whose_extensions_cannot_be_read_is_never_judged_better(self):
        # The ARM engine reads each VM's extensions from /virtualMachines/{vm}/extensions.  When that
        # fails the VM's encryption facts are unavailable: its VM rules turn `error`, exit 3, the
        # error listed, nothing changes to pass.
        rc, got, rep = self.scan("reset-vm", {"match": {"pathRegex": "virtualMachines/nwlog-tms01/extensions$"},
                                              "reset": True, "times": 0})
        self.assertEqual(rc, 3, self.last.stderr)
        self.assertFalse(rep["scan"]["complete"])
        self.assertTrue(any(e["scope"].endswith("virtualMachines/nwlog-tms01") for e in rep["errors"]), rep["errors"])
        for k, status in self.clean.items():
            self.assertIn(got.get(k), (status, "error"), k)
        for k, status in got.items():
            self.assertIn(status, (self.clean.get(k), "error"), k)
        lim5 = [k for k in got if k[0] == "KVA-LIM-005" and "nwlog-tms01" in str(k).lower()]
        self.assertTrue(lim5, sorted(got))
        for k in lim5:
            self.assertEqual(got[k], "error", k)

    def test_a_response_slower_than_the_timeout_then_a_5xx_burst(self):
        # kvaudit's whole-request timeout is 60 s (audit/azure/http.c): the first attempt stalls
        # past it, the next four get 503; the vault list is then unreadable, never guessed.
        rc, got, rep = self.scan("slow", [
            {"match": {"pathRegex": SUB_PROD + "/providers/Microsoft.KeyVault/vaults$"},
             "latencyMs": 64000, "status": 503, "times": 1},
            {"match": {"pathRegex": SUB_PROD + "/providers/Microsoft.KeyVault/vaults$"},
             "status": 503, "times": 0}], timeout=240)
        log = [x for x in self.emu.requests() if x["path"].endswith(SUB_PROD + "/providers/Microsoft.KeyVault/vaults")]
        # (the stalled request may be logged twice: the emulator also logs its failed write to the
        # socket kvaudit had closed) one stalled attempt, then four 503s
        self.assertEqual(len({x["seq"] for x in log}), 5, log)
        self.assertGreaterEqual(max(x["durationMs"] for x in log), 60000)
        self.assert_incomplete(rc, got, rep, "Microsoft.KeyVault/vaults", lambda k: SUB_PROD in k[2])

    def test_malformed_json_in_page_3_of_5_is_never_reported_as_complete(self):
        self.emu.call("POST", "/_emulator/config", {"pageSize": 3})   # 12 VMs: pages at 0,3,6,9 (+ end)
        try:
            rc, got, rep = self.scan("malformed", {"match": {"pathRegex": VM_LIST, "queryRegex": skiptoken(6)},
                                                   "malformed": True, "times": 0})
        finally:
            self.emu.call("POST", "/_emulator/config", {"pageSize": 2})
        pages = [x for x in self.emu.requests() if x["path"].endswith(VM_LIST[:-1])]
        self.assertGreaterEqual(len(pages), 3)
        self.assertEqual(rc, 3, self.last.stderr)
        self.assertFalse(rep["scan"]["complete"])
        self.assertTrue(any(e["code"] == "MalformedResponse" and e["scope"].endswith("virtualMachines")
                            for e in rep["errors"]), rep["errors"])
        # The subscription's VM list is unknown: none of its VMs is judged from part of it, and
        # nothing else changes.  (Its VMs are not listed at all: see docs/security.md.)
        for k, status in self.clean.items():
            if SUB_PROD not in k[1] and SUB_PROD not in k[2]:
                self.assertEqual(got.get(k), status, k)
        for k, status in got.items():
            self.assertEqual(status, self.clean.get(k, "error") if status != "error" else "error", k)

    def test_token_expiry_on_page_3(self):
        # Every token expires when page 3 of the VM list is asked for: kvaudit gets a new one and
        # asks again.  (One expiry per scan: a token renewed after a 401 that is itself revoked at
        # once fails that request, which is not something Entra ID does.)
        self.emu.call("POST", "/_emulator/config", {"pageSize": 3})
        try:
            rc, got, rep = self.scan("expiry", {"match": {"pathRegex": VM_LIST, "queryRegex": skiptoken(6)},
                                                "expireTokens": True, "times": 1})
        finally:
            self.emu.call("POST", "/_emulator/config", {"pageSize": 2})
        self.assertGreaterEqual([x["status"] for x in self.emu.requests()].count(401), 1)
        self.assert_same_as_clean(rc, got, rep)

    def test_token_expiry_on_the_data_plane(self):
        _, clean, _ = self.scan("dp-clean", extra=["--data-plane"])
        rc, got, rep = self.scan("dp-expiry", {"match": {"host": r"\.vault\.emulator\.test"}, "expireTokens": True,
                                               "times": 1}, extra=["--data-plane"])
        self.assertGreaterEqual([x["status"] for x in self.emu.requests() if x["surface"] == "keyvault"].count(401), 1)
        self.assertTrue(rep["scan"]["complete"], rep["errors"])
        self.assertEqual(got, clean)


def policies(v):
    return v["properties"].get("accessPolicies", [])


class KilledFix(unittest.TestCase):
    """`fix --apply` killed with SIGKILL at several points, then `kvaudit rollback JOURNAL`."""

    def setUp(self):
        self.emu = Emulator()
        self.names = [v["name"] for v in load(os.path.join(ARGS["source"], "examples/demo-estate.json"))["vaults"]]
        self.before = {n: self.emu.vault(n) for n in self.names}
        self.roles_before = self.emu.role_assignments()

    def tearDown(self):
        self.emu.stop()

    def state(self):
        return ({n: json.dumps(policies(self.emu.vault(n)), sort_keys=True) for n in self.names},
                sorted(x["id"] for x in self.emu.role_assignments()))

    def run_and_kill(self, faults, when):
        """Starts fix --apply, kills it -9 once when(log) is true; returns the journal's lines."""
        self.emu.clear()
        self.emu.fault(faults)
        journal = os.path.join(self.emu.dir, "j.journal")
        env = self.emu.env("secret")
        cmd = [ARGS["kvaudit"], "fix", "--cloud", self.emu.cloud, "--auth", "env", "-q", "--apply", "--yes",
               "--journal", journal]
        p = subprocess.Popen(cmd, env=env, cwd=self.emu.dir, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        try:
            while p.poll() is None and time.time() < deadline:
                if when(self.emu.requests()):
                    os.kill(p.pid, signal.SIGKILL)
                    break
                time.sleep(0.02)
        finally:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
            out, err = p.communicate()
        self.assertEqual(p.returncode, -signal.SIGKILL, "fix ended before the kill point: " + err.decode())
        # Let a write that was in flight land (the emulator finishes it after the client is gone).
        time.sleep(3)
        self.emu.call("DELETE", "/_emulator/faults")
        self.assertEqual(os.stat(journal).st_mode & 0o777, 0o600)
        raw = open(journal, "rb").read()
        self.assertNotIn(b"eyJ", raw)
        lines = raw.decode().splitlines()
        parsed = [json.loads(x) for x in lines]           # complete and parseable: no torn line
        self.assertTrue(parsed and all("phase" in x or "type" in x for x in parsed), parsed)
        return parsed

    def rollback_restores(self):
        r = kvaudit(self.emu, ["rollback", "-q", "j.journal", "--yes", "--out", "rb.json"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.state(), ({n: json.dumps(policies(self.before[n]), sort_keys=True)
                                         for n in self.names}, sorted(x["id"] for x in self.roles_before)))
        # Repeating it changes nothing.
        self.emu.clear()
        r = kvaudit(self.emu, ["rollback", "-q", "j.journal", "--yes"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.emu.writes(), [])

    def writes_done(self, log):
        return [x for x in log if x["method"] in ("PUT", "DELETE") and x["surface"] == "arm" and x["status"]]

    def test_killed_while_the_first_write_is_in_flight(self):
        # The PUT stalls 2 s in the emulator and then lands, after kvaudit is gone: kill as soon as
        # the emulator has taken the fault (the request has arrived).
        parsed = self.run_and_kill({"match": {"method": "PUT"}, "latencyMs": 2000, "times": 1},
                                   lambda log: any(f["hits"] for f in self.emu.call("GET", "/_emulator/faults")))
        self.assertEqual([x.get("phase") for x in parsed if x.get("phase")][-1], "intent")
        self.assertNotEqual(self.state()[0], {n: json.dumps(policies(self.before[n]), sort_keys=True)
                                              for n in self.names}, "the in-flight write should have landed")
        self.rollback_restores()

    def test_killed_after_the_first_write_before_its_verification(self):
        # Every GET is slowed so that the kill lands between a write and its re-read.
        parsed = self.run_and_kill({"match": {"method": "GET", "pathRegex": "^/arm/"}, "latencyMs": 400,
                                    "times": 0}, lambda log: len(self.writes_done(log)) >= 1)
        self.assertTrue(any(x.get("phase") == "intent" for x in parsed))
        self.rollback_restores()

    def test_killed_after_two_writes_and_during_the_role_assignment(self):
        parsed = self.run_and_kill([
            {"match": {"method": "PUT", "pathRegex": "roleAssignments"}, "latencyMs": 2000, "times": 1},
            {"match": {"method": "GET", "pathRegex": "^/arm/"}, "latencyMs": 150, "times": 0}],
            lambda log: len(self.writes_done(log)) >= 2)
        self.assertGreaterEqual(len([x for x in parsed if x.get("phase") == "intent"]), 2)
        self.rollback_restores()

    def test_a_failed_write_is_exit_4_and_the_rest_still_applies(self):
        # A 5xx burst on one vault's write outlasts the retries; the other vaults still apply.
        self.emu.fault({"match": {"method": "PUT", "pathRegex": "kv-nwlog-data-eus/accessPolicies/add"},
                        "status": 503, "times": 0})
        r = kvaudit(self.emu, ["fix", "-q", "--apply", "--yes", "--journal", "j.journal", "--out", "run.json"],
                    timeout=180)
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
        run = load(os.path.join(self.emu.dir, "run.json"))
        by = {x["name"]: x["status"] for x in run["results"]}
        self.assertEqual(by["kv-nwlog-data-eus"], "failed")
        self.assertTrue(all(s in ("applied", "skipped") for n, s in by.items() if n != "kv-nwlog-data-eus"), by)
        self.assertEqual(policies(self.emu.vault("kv-nwlog-data-eus")), policies(self.before["kv-nwlog-data-eus"]))
        self.emu.call("DELETE", "/_emulator/faults")
        self.rollback_restores()


if __name__ == "__main__":
    sys.exit(main(__name__))
