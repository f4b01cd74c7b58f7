#!/usr/bin/env python3
"""The ARM engine (--engine arm) against the emulator: list-based collection, concurrency and
throttling-aware scheduling (issue 5).

  - the demo scanned with the ARM engine gives exactly the findings of today's collection (every VM
    read with $expand=instanceView, which the engine falls back to when the statusOnly list is
    refused), whatever the VM list says about extensions (IDs only, or in full), and the same
    snapshot every time;
  - every list is paged; the number of requests grows with the number of list pages, not of VMs:
    it is predicted exactly from the scenario (docs/azure-api.md, "ARM engine");
  - requests overlap in time (from the emulator log's start times and durations);
  - with ARM's token buckets on, every 429 is retried and none is left in the snapshot, and the
    scheduler slows a subscription down before its bucket runs dry;
  - a 429 storm on one subscription slows that subscription only.

Usage: test_arm_engine.py --kvaudit BIN --source REPO [TEST ...]
"""
import collections
import datetime
import json
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emulator_helper import ARGS, Emulator, kvaudit, main  # noqa: E402

SUB_TRADERS_PROD = "8b2e4f71-3c9a-4d6e-b1f0-7a5c2e9d4b13"
ADE_TYPES = ("microsoft.azure.security.azurediskencryption", "microsoft.azure.security.azurediskencryptionforlinux")


def load(path):
    with open(path) as f:
        return json.load(f)


def key(f):
    return (f["rule"], f["status"], (f["vm"] or "").lower(), (f["vault"] or "").lower(), f["tenant"])


def when(r):
    """(start, end) of a logged request in seconds."""
    t = datetime.datetime.strptime(r["time"][:26], "%Y-%m-%dT%H:%M:%S.%f").timestamp()
    return t, t + r.get("durationMs", 0) / 1000.0


REFERENCE = {}


def reference_findings():
    """The demo's findings with the collection as it was: statusOnly refused (403), so the engine
    reads every VM one by one with $expand=instanceView."""
    if "findings" not in REFERENCE:
        emu = Emulator()
        try:
            REFERENCE.update(todays_collection(emu))
        finally:
            emu.stop()
    return REFERENCE["findings"]


def todays_collection(emu):
    emu.fault({"match": {"pathRegex": "/providers/Microsoft.Compute/virtualMachines/?$",
                         "queryRegex": "statusOnly=true"}, "times": 0, "status": 403})
    r, out, estate = scan(emu, "today")
    assert r.returncode == 1, r.stderr
    log = emu.requests()
    emu.clear()
    return {"findings": {key(f) for f in load(out)["findings"]}, "estate": load(estate), "log": log}


def scan(emu, name, *extra):
    out = os.path.join(emu.dir, name + ".json")
    estate = os.path.join(emu.dir, name + "-estate.json")
    r = kvaudit(emu, ["scan", "--engine", "arm", "--include-pass", "--out", out, "--save-estate", estate,
                      "-q"] + list(extra))
    return r, out, estate


def arm_reads(log):
    return [r for r in log if r["surface"] == "arm" and r["method"] == "GET"]


# What the ARM engine reads (other areas, e.g. Azure Backup's jobs, read more after it).
ENGINE_PATH = re.compile(r"/providers/Microsoft\.(Compute/virtualMachines|Compute/disks|KeyVault/vaults|"
                         r"RecoveryServices/vaults|Authorization/roleAssignments)/?$|/backupProtectedItems/?$|"
                         r"/extensions(/[^/]+)?/?$", re.I)


class DemoIds(unittest.TestCase):
    """The demo with the VM list giving extensions as IDs only (the emulator's default)."""
    overlay = None

    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator(overlay=cls.overlay)
        # 30 ms per ARM request, so that concurrent requests visibly overlap in the log
        cls.emu.fault({"match": {"pathRegex": "^/arm/"}, "times": 0, "latencyMs": 30})
        cls.result, cls.out, cls.estate = scan(cls.emu, "arm")
        cls.log = cls.emu.requests()
        cls.emu.clear()
        cls.today = todays_collection(cls.emu)

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def test_findings_equal_todays_collection(self):
        self.assertEqual(self.result.returncode, 1, self.result.stderr)
        live = {key(f) for f in load(self.out)["findings"]}
        self.assertEqual(live ^ self.today["findings"], set())
        self.assertGreater(len(live), 100)
        # today's collection really read each VM
        got = [r for r in self.today["log"] if "instanceview" in r["query"].lower()]
        self.assertEqual(len(got), len(load(self.estate)["virtualMachines"]))

    def test_the_snapshot_has_what_todays_collection_has(self):
        mine, today = load(self.estate), self.today["estate"]
        self.assertEqual(mine["errors"], [])
        for k in ("virtualMachines", "disks", "vaults", "roleAssignments", "roleDefinitions",
                  "recoveryServicesVaults", "backupProtectedItems", "subscriptions", "tenants"):
            self.assertEqual(sorted(x.get("id", json.dumps(x, sort_keys=True)).lower() for x in mine[k]),
                             sorted(x.get("id", json.dumps(x, sort_keys=True)).lower() for x in today[k]), k)
        by_id = {v["id"].lower(): v for v in today["virtualMachines"]}
        full = bool(self.overlay)
        for vm in mine["virtualMachines"]:
            other = by_id[vm["id"].lower()]
            self.assertEqual(vm["properties"].get("instanceView"), other["properties"].get("instanceView"))
            mine_ext = {e["id"].lower(): e for e in vm.get("resources") or []}
            their_ext = {e["id"].lower(): e for e in other.get("resources") or []}
            self.assertEqual(set(mine_ext), set(their_ext), vm["name"])
            for eid, e in mine_ext.items():
                if full or "properties" in e:
                    self.assertEqual(e, their_ext[eid])
                else:
                    # left as an ID: not an ADE extension
                    self.assertNotIn((their_ext[eid]["properties"].get("type") or "").lower(),
                                     ("azurediskencryption", "azurediskencryptionforlinux"))
            if full:
                self.assertEqual(vm, other)

    def test_no_request_per_vm_but_for_ade_extensions_the_list_did_not_describe(self):
        reads = arm_reads(self.log)
        per_vm = [r for r in reads if "/virtualmachines/" in r["path"].lower()]
        for r in per_vm:
            self.assertIn("/extensions", r["path"].lower(), r["path"])
            self.assertNotIn("instanceview", r["query"].lower())
        self.assertEqual(len(per_vm), self.expected_extension_reads())

    def expected_extension_reads(self):
        """One GET per ADE extension the instance view names, or one list for a VM whose instance view
        does not account for all its extensions; none when the list gives extensions in full."""
        scen = load(os.path.join(self.emu.dir, "scenario.json")) if os.path.exists(
            os.path.join(self.emu.dir, "scenario.json")) else None
        estate = load(self.estate)
        n = 0
        if self.overlay and self.overlay.get("emulator", {}).get("vmListExtensions") == "full":
            return 0
        del scen
        demo = load(os.path.join(ARGS["source"], "examples/demo-estate.json"))
        ext_of = {}
        for e in demo.get("vmExtensions") or []:
            ext_of.setdefault(e["id"].lower().split("/extensions/")[0], []).append(e)
        for vm in demo["virtualMachines"]:
            exts = list(vm.get("resources") or []) + ext_of.get(vm["id"].lower(), [])
            if not exts:
                continue
            iv = (vm.get("properties") or {}).get("instanceView") or {}
            named = {(e.get("name") or "").lower(): e for e in iv.get("extensions") or []}
            if "extensions" not in iv or any(e["id"].rsplit("/", 1)[1].lower() not in named for e in exts):
                n += 1
            else:
                n += sum(1 for e in exts if (named[e["id"].rsplit("/", 1)[1].lower()].get("type") or "").lower()
                         in ADE_TYPES)
        self.assertEqual(len(estate["virtualMachines"]), len(demo["virtualMachines"]))
        return n

    def test_every_list_is_paged_and_every_vm_list_asks_for_status_once(self):
        reads = arm_reads(self.log)
        self.assertTrue(any("skiptoken" in r["query"].lower() for r in reads))
        status = [r for r in reads if "statusonly=true" in r["query"].lower()]
        self.assertGreater(len(status), 0)
        self.assertTrue(all(r["status"] == 200 for r in reads), [r for r in reads if r["status"] != 200])

    def test_requests_overlap(self):
        spans = sorted(when(r) for r in arm_reads(self.log))
        overlapping = sum(1 for a, b in zip(spans, spans[1:]) if b[0] < a[1])
        self.assertGreater(overlapping, 5, "requests should run concurrently")

    def test_the_snapshot_is_the_same_on_a_second_scan(self):
        r, _, estate2 = scan(self.emu, "again")
        self.assertEqual(r.returncode, 1, r.stderr)
        a, b = load(self.estate), load(estate2)
        for doc in (a, b):
            for k in [k for k, v in doc.items() if isinstance(v, str)]:
                doc.pop(k)   # collectedAt and other times
        self.assertEqual(json.dumps(a, sort_keys=False), json.dumps(b, sort_keys=False))


class DemoFull(DemoIds):
    """The same with the VM list giving every extension in full: no per-VM request at all."""
    overlay = {"emulator": {"vmListExtensions": "full"}}


class Scaling(unittest.TestCase):
    """Requests grow with list pages, not VMs: a generated estate of 60 VMs, then of 240 VMs, with the
    VM list describing extensions in full and pages of 100."""

    def run_size(self, vms):
        work = os.path.join(self.tmp, str(vms))
        os.makedirs(work, exist_ok=True)
        scen = os.path.join(work, "scenario.json")
        subprocess.run([sys.executable, os.path.join(ARGS["source"], "bench/gen_estate.py"), "--vms", str(vms),
                        "--subs", "2", "--tenants", "1", "--seed", "3", "--out", os.path.join(work, "estate.json"),
                        "--scenario", scen, "--page-size", "100"], check=True, capture_output=True)
        emu = Emulator(scenario=scen, overlay={"emulator": {"vmListExtensions": "full", "pageSize": 100}})
        try:
            r = kvaudit(emu, ["collect", "--engine", "arm", "--out", os.path.join(work, "c.json"), "-q"],
                        timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr)
            reads = arm_reads(emu.requests())
            per_vm = [x for x in reads if "/virtualmachines/" in x["path"].lower()]
            return reads, len(per_vm), load(os.path.join(work, "c.json"))
        finally:
            emu.stop()

    def setUp(self):
        import tempfile
        self.tmp = tempfile.mkdtemp(prefix="kvaudit-arm-")

    def test_requests_grow_with_pages_not_vms(self):
        small, small_vm, est_small = self.run_size(60)
        big, big_vm, est_big = self.run_size(240)
        self.assertEqual((small_vm, big_vm), (0, 0))
        self.assertEqual(len(est_big["virtualMachines"]), 240)
        self.assertEqual(est_big["errors"], [])
        # Backup jobs grow with the protected VMs (one a day each): one request per page of 100 a vault.
        for reads, est in ((small, est_small), (big, est_big)):
            per_vault = collections.Counter(j["id"].lower().split("/backupjobs/")[0] for j in est["backupJobs"])
            jobs = [x["path"].lower()[len("/arm"):-len("/backupjobs")] for x in reads
                    if x["path"].lower().endswith("/backupjobs")]
            self.assertEqual(len(jobs), sum(max(1, -(-per_vault[v] // 100)) for v in set(jobs)), per_vault)
        small, big = ([x for x in r if not x["path"].lower().endswith("/backupjobs")] for r in (small, big))
        # 4x the VMs: a few more pages (100 items each) of the rest, far from 4x the requests
        self.assertLess(len(big), len(small) + 20, (len(small), len(big)))


class Throttling(unittest.TestCase):
    """ARM's token buckets (250 reads, 25/s, per subscription and principal) made small enough to bite."""

    def test_every_429_is_retried_and_the_snapshot_is_whole(self):
        emu = Emulator(overlay={"emulator": {"armThrottle": {"reads": 6, "refillPerSec": 10}}})
        try:
            r, out, estate = scan(emu, "throttled", "--concurrency", "8")
            self.assertEqual(r.returncode, 1, r.stderr)
            log = emu.requests()
            throttled = [x for x in log if x["status"] == 429]
            self.assertGreater(len(throttled), 0, "the bucket should have run dry")
            self.assertEqual(load(estate)["errors"], [])
            self.assertEqual({key(f) for f in load(out)["findings"]} ^ reference_findings(), set())
        finally:
            emu.stop()

    def test_it_slows_down_before_arm_says_429(self):
        # One item per page: Northwind Production needs ~110 reads from a bucket of 30 (25/s refill).
        # Paced by x-ms-ratelimit-remaining-subscription-reads, 16 requests at once hardly ever
        # empty it; unpaced they would be refused again and again.
        emu = Emulator(overlay={"emulator": {"armThrottle": {"reads": 30, "refillPerSec": 25}, "pageSize": 1}})
        try:
            r = kvaudit(emu, ["collect", "--engine", "arm", "--concurrency", "16", "--out",
                              os.path.join(emu.dir, "c.json"), "-q"])
            self.assertEqual(r.returncode, 0, r.stderr)
            log = arm_reads(emu.requests())
            prod = [x for x in log if SUB_TRADERS_PROD in x["path"].lower()]
            self.assertGreater(len(prod), 90)
            self.assertLessEqual(sum(1 for x in log if x["status"] == 429), 3)
            self.assertEqual(load(os.path.join(emu.dir, "c.json"))["errors"], [])
        finally:
            emu.stop()

    def test_a_429_storm_on_one_subscription_slows_that_one_only(self):
        emu = Emulator()
        try:
            # Every read of one subscription is refused 3 times in a row with Retry-After: 2
            emu.fault({"match": {"pathRegex": "^/arm/subscriptions/%s/" % SUB_TRADERS_PROD}, "times": 3,
                       "status": 429, "retryAfter": 2})
            r, out, estate = scan(emu, "storm")
            self.assertEqual(r.returncode, 1, r.stderr)
            reads = arm_reads(emu.requests())
            storm = [x for x in reads if SUB_TRADERS_PROD in x["path"].lower()]
            calm = [x for x in reads if "/subscriptions/" in x["path"].lower() and SUB_TRADERS_PROD
                    not in x["path"].lower() and ENGINE_PATH.search(x["path"])]
            storm = [x for x in storm if ENGINE_PATH.search(x["path"])]
            self.assertEqual(sum(1 for x in storm if x["status"] == 429), 3)
            first_429 = min(when(x)[0] for x in storm if x["status"] == 429)
            storm_done = max(when(x)[1] for x in storm)
            calm_done = max(when(x)[1] for x in calm)
            # the throttled subscription waited (2 s per retry); the others did not wait for it
            self.assertGreater(storm_done - first_429, 1.9)
            self.assertLess(calm_done, storm_done - 1.0, (calm_done, storm_done))
            self.assertEqual(load(estate)["errors"], [])
        finally:
            emu.stop()


GRAPH_QUERY = "/arm/providers/Microsoft.ResourceGraph/resources"


def overlapping(log, surfaces=None):
    """How many ARM reads (or requests to those surfaces) started before the one before them ended."""
    reads = arm_reads(log) if surfaces is None else [r for r in log if r["surface"] in surfaces]
    spans = sorted(when(r) for r in reads)
    return sum(1 for a, b in zip(spans, spans[1:]) if b[0] < a[1])


class ConfigFile(unittest.TestCase):
    """engine and concurrency from --config (docs/config.md); the flags win over the file."""

    @staticmethod
    def start():
        """An emulator with 30 ms per ARM request, and a config file asking for the ARM engine, one at a time."""
        emu = Emulator()
        emu.fault({"match": {"pathRegex": "^/arm/"}, "times": 0, "latencyMs": 30})
        cfg = os.path.join(emu.dir, "kvaudit.json")
        with open(cfg, "w") as f:
            json.dump({"kind": "kvaudit.config", "version": 1, "engine": "arm", "concurrency": 1}, f)
        return emu, cfg

    def test_engine_and_concurrency_from_the_file_and_flags_win(self):
        emu, cfg = self.start()
        try:
            emu.call("DELETE", "/_emulator/log")
            r = kvaudit(emu, ["scan", "--config", cfg, "--out", os.path.join(emu.dir, "file.json"), "-q"])
            self.assertEqual(r.returncode, 1, r.stderr)
            log = emu.requests()
            self.assertEqual([x for x in log if x["path"] == GRAPH_QUERY], [])  # no Resource Graph query
            self.assertEqual(overlapping(log), 0)                            # one request at a time
            emu.call("DELETE", "/_emulator/log")
            r = kvaudit(emu, ["scan", "--config", cfg, "--engine", "graph", "--concurrency", "16", "--out",
                              os.path.join(emu.dir, "flags.json"), "-q"])
            self.assertEqual(r.returncode, 1, r.stderr)
            log = emu.requests()
            self.assertTrue(any(x["path"] == GRAPH_QUERY and x["method"] == "POST" for x in log))
            self.assertGreater(overlapping(log), 0)
            self.assertEqual(sorted(x["rule"] + str(x["vm"]) + str(x["vault"]) for x in
                                    load(os.path.join(emu.dir, "file.json"))["findings"]),
                             sorted(x["rule"] + str(x["vm"]) + str(x["vault"]) for x in
                                    load(os.path.join(emu.dir, "flags.json"))["findings"]))
        finally:
            emu.stop()

    def test_one_request_at_a_time_includes_the_data_plane(self):
        """--concurrency 1 with --data-plane: no two requests to Azure (ARM, Key Vault, Microsoft Graph,
        the token endpoint) are ever in flight at once, by the emulator's log of when each started and
        how long it took."""
        emu, cfg = self.start()
        try:
            emu.fault({"match": {"host": "vault"}, "times": 0, "latencyMs": 30})
            emu.call("DELETE", "/_emulator/log")
            r = kvaudit(emu, ["scan", "--config", cfg, "--data-plane", "--out", os.path.join(emu.dir, "dp.json"),
                              "-q"])
            self.assertEqual(r.returncode, 1, r.stderr)
            log = emu.requests()
            azure = ("arm", "keyvault", "graph", "login")
            self.assertGreater(sum(1 for x in log if x["surface"] == "keyvault"), 5)
            self.assertEqual(overlapping(log, azure), 0)
            # the same with 8 at once: the check can see an overlap when there is one
            emu.call("DELETE", "/_emulator/log")
            r = kvaudit(emu, ["scan", "--config", cfg, "--data-plane", "--concurrency", "8", "--out",
                              os.path.join(emu.dir, "dp8.json"), "-q"])
            self.assertEqual(r.returncode, 1, r.stderr)
            log = emu.requests()
            self.assertGreater(overlapping(log, azure), 0)
            # ... the data plane's reads among them (collect_dataplane.c reads them through the batch)
            self.assertGreater(overlapping(log, ("keyvault",)), 0)
            self.assertEqual(*[sorted((x["rule"], str(x["vm"]), str(x["vault"]), x["status"]) for x in
                                      load(os.path.join(emu.dir, n))["findings"]) for n in ("dp8.json", "dp.json")])
        finally:
            emu.stop()

    def test_collect_and_fix_read_the_file_as_scan_does(self):
        """collect --config and fix (--config or $KVAUDIT_CONFIG) take engine and concurrency from the file."""
        emu, cfg = self.start()
        try:
            def check(args, graph, extra_env=None):
                emu.call("DELETE", "/_emulator/log")
                r = kvaudit(emu, args, extra_env=extra_env)
                self.assertEqual(r.returncode, 0, (args, r.stderr))
                log = emu.requests()
                self.assertEqual(any(x["path"] == GRAPH_QUERY for x in log), graph, args)
                if graph:
                    self.assertGreater(overlapping(log), 0, args)
                else:
                    self.assertEqual(overlapping(log), 0, args)

            est = os.path.join(emu.dir, "estate.json")
            check(["collect", "--config", cfg, "--out", est, "-q"], False)
            self.assertEqual(load(est)["errors"], [])
            check(["fix", "--config", cfg, "-q"], False)
            check(["fix", "-q"], False, extra_env={"KVAUDIT_CONFIG": cfg})
            check(["fix", "--config", cfg, "--engine", "graph", "--concurrency", "16", "-q"], True)
            check(["collect", "--config", cfg, "--engine", "graph", "--concurrency", "16", "--out", est, "-q"],
                  True)
        finally:
            emu.stop()


if __name__ == "__main__":
    sys.exit(main())
