#!/usr/bin/env python3
"""End-to-end tests of the Resource Graph engine (audit/azure/collect_graph.c), --shard K/N and
`kvaudit merge`: the real binary against the Azure emulator over HTTPS on 127.0.0.1.

Run by ctest as: test_graph.py --kvaudit BIN --source REPO
Asserts on kvaudit's reports, estates and exit codes and on the emulator's request log.
Prints 'N passed, N failed'.
"""
import datetime
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from emulator_helper import ARGS, Emulator, kvaudit, main

ARG_PATH = "/arm/providers/Microsoft.ResourceGraph/resources"
AVA_TRADERS = "5b9e1c3d-7f24-4a86-b0d1-e3c7a5f92b48"   # Ava's object ID in her home tenant


def load(path):
    with open(path) as f:
        return json.load(f)


def key(f):
    return (f["rule"], f["status"], (f["vm"] or "").lower(), (f["vault"] or "").lower(), f["tenant"] or "")


def keys(path):
    return sorted(key(f) for f in load(path)["findings"])


def evidence(path):
    return {key(f): f["evidence"] for f in load(path)["findings"]}


def graph_posts(log):
    return [r for r in log if r["path"] == ARG_PATH and r["method"] == "POST"]


OUT = tempfile.mkdtemp(prefix="kvaudit-graph-")   # outputs outlive each emulator's directory


def out(name):
    return os.path.join(OUT, name)


def run(args):
    return subprocess.run([ARGS["kvaudit"]] + args, capture_output=True, text=True, timeout=120)


def scan_then_arm(emu, name, args):
    """kvaudit scan ARGS into out(NAME.json), then (log and faults cleared) the ARM engine's scan into
    out(NAME-arm.json); stops emu.  Returns both runs, their reports' paths and the first scan's log."""
    try:
        mine, ref = out(name + ".json"), out(name + "-arm.json")
        r = kvaudit(emu, ["scan", "--include-pass", "--out", mine] + args, auth="cli")
        log = emu.requests()
        emu.clear()
        r2 = kvaudit(emu, ["scan", "--engine", "arm", "--include-pass", "--out", ref, "-q"], auth="cli")
    finally:
        emu.stop()
    return r, r2, mine, ref, log


class Engines(unittest.TestCase):
    """The demo scanned by the Guest/Member user Ava through each engine."""

    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator()
        d = OUT
        cls.res, cls.logs = {}, {}
        for eng in ("graph", "arm"):
            cls.emu.clear()
            cls.res[eng] = kvaudit(cls.emu, ["scan", "--engine", eng, "--include-pass", "--out",
                                             os.path.join(d, eng + ".json"), "--save-estate",
                                             os.path.join(d, eng + "-estate.json"), "-v"], auth="cli")
            cls.logs[eng] = cls.emu.requests()
        cls.emu.clear()
        cls.res["default"] = kvaudit(cls.emu, ["scan", "--include-pass", "--out", os.path.join(d, "default.json"),
                                               "-q"], auth="cli")
        cls.logs["default"] = cls.emu.requests()

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def path(self, name):
        return out(name)

    def test_both_engines_give_the_same_findings_and_evidence(self):
        self.assertEqual(self.res["graph"].returncode, self.res["arm"].returncode, self.res["graph"].stderr[-2000:])
        self.assertEqual(keys(self.path("graph.json")), keys(self.path("arm.json")))
        self.assertEqual(evidence(self.path("graph.json")), evidence(self.path("arm.json")))
        g, a = load(self.path("graph.json"))["summary"], load(self.path("arm.json"))["summary"]
        self.assertEqual(g["byStatus"], a["byStatus"])
        self.assertEqual(g["subjects"], a["subjects"])

    def test_both_engines_read_the_same_estate(self):
        g, a = load(self.path("graph-estate.json")), load(self.path("arm-estate.json"))
        for lst in ("subscriptions", "virtualMachines", "vaults", "roleAssignments", "recoveryServicesVaults",
                    "backupProtectedItems", "tenants"):
            ids = lambda d: sorted((x.get("id") or x.get("tenantId") or "").lower() for x in d.get(lst) or [])
            self.assertEqual(ids(g), ids(a), lst)
        # the VM agent: instance views (ARM statusOnly lists) reach the VMs Resource Graph returned
        gv = {v["id"].lower(): "instanceView" in v["properties"] for v in g["virtualMachines"]}
        av = {v["id"].lower(): "instanceView" in v["properties"] for v in a["virtualMachines"]}
        self.assertEqual(gv, av)
        self.assertTrue(any(gv.values()))

    def test_vm_and_disk_rows_keep_what_is_read_as_arm_has_it(self):
        """The VM query projects id, name, type, location and the storage profile's osDisk and dataDisks
        (put back under properties.storageProfile), disks keep their ADE settings: the same values as the
        ARM engine's, and nothing kvaudit does not read (collect_graph.c, the comment on QUERIES)."""
        g, a = load(self.path("graph-estate.json")), load(self.path("arm-estate.json"))
        arm_vms = {v["id"].lower(): v for v in a["virtualMachines"]}
        for v in g["virtualMachines"]:
            self.assertEqual(set(v), {"id", "name", "type", "location", "properties"}, v["id"])
            self.assertEqual(set(v["properties"]) - {"instanceView"}, {"storageProfile"}, v["id"])
            ref = arm_vms[v["id"].lower()]
            self.assertEqual((v["name"], v["location"].lower()), (ref["name"], ref["location"].lower()))
            for k in ("osDisk", "dataDisks"):
                self.assertEqual(v["properties"]["storageProfile"].get(k),
                                 ref["properties"]["storageProfile"].get(k), (v["id"], k))
        self.assertTrue(any(v["properties"]["storageProfile"].get("dataDisks") for v in g["virtualMachines"]))
        arm_disks = {d["id"].lower(): d for d in a["disks"]}
        self.assertTrue(g["disks"])
        for d in g["disks"]:
            self.assertEqual(set(d["properties"]), {"encryptionSettingsCollection"}, d["id"])
            self.assertEqual(d["properties"]["encryptionSettingsCollection"],
                             arm_disks[d["id"].lower()]["properties"]["encryptionSettingsCollection"])
            self.assertEqual((d.get("managedBy") or "").lower(),
                             (arm_disks[d["id"].lower()].get("managedBy") or "").lower())

    def test_graph_is_the_default_and_reads_lists_not_vms(self):
        for eng in ("graph", "default"):
            log = self.logs[eng]
            posts = graph_posts(log)
            self.assertGreaterEqual(len(posts), 5, eng)
            self.assertTrue(all(r["query"] == "api-version=2024-04-01" for r in posts))
            # no request per VM: VMs come from Resource Graph, instance views from statusOnly lists
            per_vm = [r for r in log if "/virtualMachines/" in r["path"] and r["method"] == "GET"]
            self.assertEqual(per_vm, [], eng)
            self.assertTrue(any("statusOnly=true" in r["query"] for r in log), eng)
        self.assertEqual(graph_posts(self.logs["arm"]), [])
        self.assertEqual(keys(self.path("default.json")), keys(self.path("graph.json")))

    def test_one_row_per_vm_gives_the_disks_and_extensions_of_the_arm_engine(self):
        """ADE extensions and encrypted disks come one row per VM (summarize ... make_list_if(...) by vm)."""
        g, a = load(self.path("graph-estate.json")), load(self.path("arm-estate.json"))

        def ext(d):   # the ADE extensions, wherever the engine put them (vmExtensions or the VM's resources)
            found = (d.get("vmExtensions") or []) + [x for v in d["virtualMachines"] for x in v.get("resources") or []]
            return sorted({x["id"].lower() for x in found
                           if ((x.get("properties") or {}).get("publisher") or "").lower() == "microsoft.azure.security"
                           and ((x.get("properties") or {}).get("type") or "").lower() in
                           ("azurediskencryption", "azurediskencryptionforlinux")})
        disks = lambda d: {x["id"].lower(): (x.get("managedBy") or "").lower() for x in d.get("disks") or []
                           if (x.get("properties") or {}).get("encryptionSettingsCollection") is not None}
        self.assertTrue(ext(g) and disks(g))
        self.assertEqual(disks(g), disks(a))
        self.assertEqual(ext(g), ext(a))

    def test_progress_names_the_engine(self):
        self.assertIn("Resource Graph:", self.res["graph"].stderr)


class Paging(unittest.TestCase):
    """Resource Graph pages of 2 rows ($skipToken) give the same findings as one page."""

    def test_skiptoken_paging(self):
        emu = Emulator(overlay={"emulator": {"graphPageSize": 2}})
        r, r2, paged, ref, log = scan_then_arm(emu, "paged", ["--engine", "graph", "-q"])
        self.assertEqual(r.returncode, r2.returncode, r.stderr[-2000:])
        self.assertEqual(keys(paged), keys(ref))
        # 16 VMs alone need 8 pages of 2: far more requests than the 4 queries per tenant
        self.assertGreater(len(graph_posts(log)), 20)


class Throttling(unittest.TestCase):
    def test_429_is_retried(self):
        emu = Emulator()
        try:
            emu.fault({"match": {"method": "POST", "pathRegex": "ResourceGraph"}, "status": 429, "retryAfter": 1,
                       "times": 2})
            res = out("throttled.json")
            r = kvaudit(emu, ["scan", "--engine", "graph", "--include-pass", "--out", res, "-q"], auth="cli")
            log = emu.requests()
            emu.clear()
            ref = out("throttled-ref.json")
            kvaudit(emu, ["scan", "--engine", "graph", "--include-pass", "--out", ref, "-q"], auth="cli")
        finally:
            emu.stop()
        self.assertEqual(sum(1 for x in graph_posts(log) if x["status"] == 429), 2)
        self.assertEqual(keys(res), keys(ref), r.stderr[-2000:])
        self.assertFalse(any(e.get("status") == 429 for e in load(res)["errors"]))

    def test_the_user_quota_is_respected(self):
        """15 queries per 5 s (Resource Graph's documented example): kvaudit waits when the quota
        headers say it is spent, so the service never has to answer 429."""
        emu = Emulator(overlay={"emulator": {"graphQuota": {"queries": 2, "seconds": 2}}})
        try:
            res = out("quota.json")
            r = kvaudit(emu, ["scan", "--engine", "graph", "--include-pass", "--out", res, "-v"], auth="cli")
            log = emu.requests()
        finally:
            emu.stop()
        posts = graph_posts(log)
        self.assertGreater(len(posts), 4)   # 4 queries a tenant, 2 a quota
        self.assertEqual([x for x in posts if x["status"] == 429], [])
        self.assertIn("Resource Graph quota spent", r.stderr)
        self.assertFalse(any("Resource Graph" in e["message"] for e in load(res)["errors"]))


RSV_LOG = ("/subscriptions/6a0f9e2c-4b75-4e13-8d29-c5b1f7a3e6d8/resourceGroups/rg-nwlog-backup-eus/providers/"
           "Microsoft.RecoveryServices/vaults/rsv-nwlog-eus")
EVIDENCE_READ = r"(?i)/(backupJobs|backupPolicies|eventtypes/management/values)$|^/graph/v1\.0/users/"


def most_at_once(entries):
    """The most requests of entries the emulator was handling at the same moment (its log's start times and
    durations)."""
    edges = []
    for x in entries:
        start = datetime.datetime.fromisoformat(x["time"][:26]).timestamp()
        edges += [(start, 1), (start + x["durationMs"] / 1000.0, -1)]
    most = now = 0
    for _, d in sorted(edges, key=lambda e: (e[0], e[1])):
        now += d
        most = max(most, now)
    return most


def evidence_reads(log):
    return [x for x in log if x["method"] == "GET" and re.search(EVIDENCE_READ, x["path"])]


def without_times(estate):
    doc = load(estate)
    errors = sorted((e["scope"].lower(), e["status"], e["code"]) for e in doc.pop("errors"))
    for k in [k for k, v in doc.items() if isinstance(v, str)]:
        doc.pop(k)   # collectedAt, backupJobsSince
    # The emulator dates jobs and backups relative to its own start.
    return re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?", "T", json.dumps(doc)), errors


class Concurrency(unittest.TestCase):
    """Resource Graph's queries and Azure Backup's evidence reads run at once, with latency injected, and
    the snapshot does not depend on which answer comes first.  One vault's job list is refused (403)."""

    @classmethod
    def scan(cls, name, slow_vault_ms, others_ms):
        # The first matching fault applies: the refused list, then the latencies.
        emu = Emulator(overlay={"emulator": {"faults": [
            {"match": {"method": "GET", "pathRegex": "rsv-nwlog-eus/backupJobs$"}, "times": 0,
             "latencyMs": slow_vault_ms, "status": 403},
            {"match": {"pathRegex": "rsv-nwlog-eus/"}, "times": 0, "latencyMs": slow_vault_ms},
            {"match": {"pathRegex": "."}, "times": 0, "latencyMs": others_ms}]}})
        try:
            est = out(name + "-estate.json")
            r = kvaudit(emu, ["scan", "--engine", "graph", "--include-pass", "--out", out(name + ".json"),
                              "--save-estate", est, "-q"], auth="cli")
            return r, emu.requests(), est
        finally:
            emu.stop()

    @classmethod
    def setUpClass(cls):
        cls.a = cls.scan("order-a", 400, 100)   # the refused vault answers last
        cls.b = cls.scan("order-b", 0, 150)     # ... and first

    def test_evidence_reads_overlap(self):
        reads = evidence_reads(self.a[1])
        self.assertGreaterEqual(len(reads), 9, [x["path"] for x in reads])
        # More than one vault's reads at once (a vault has at most three lists in flight: a jobs page, its
        # policies, its Activity Log); the jobs start with the vault, the rest with its protected items.
        self.assertGreaterEqual(most_at_once(reads), 4)
        # The vaults' lists, that is: the Graph user reads wait for every Activity Log, and so for the
        # engine's last read.
        reads = [x for x in reads if not x["path"].startswith("/graph/")]
        start = min(datetime.datetime.fromisoformat(x["time"][:26]) for x in reads)
        end = max(datetime.datetime.fromisoformat(x["time"][:26]).timestamp() + x["durationMs"] / 1000.0
                  for x in reads)
        # One after another they would take the sum of their durations.  Each vault's start as its protected
        # items come in (the slow vault's 400 ms later), and a vault's job pages follow one another.
        self.assertLess(end - start.timestamp(), sum(x["durationMs"] for x in reads) / 1000.0 * 0.75)

    def test_graph_queries_overlap(self):
        posts = graph_posts(self.a[1])
        self.assertGreaterEqual(len(posts), 5)
        self.assertGreaterEqual(most_at_once(posts), 3)
        self.assertEqual([x for x in posts if x["status"] == 429], [])

    def test_a_refused_job_list_is_recorded_for_its_vault_only(self):
        for r, log, est in (self.a, self.b):
            self.assertEqual(r.returncode, 3, r.stderr[-1500:])
            doc = load(est)
            errs = [e for e in doc["errors"] if "/backupjobs" in e["scope"].lower()]
            self.assertEqual([(e["scope"].lower(), e["status"]) for e in errs],
                             [((RSV_LOG + "/backupJobs").lower(), 403)], doc["errors"])
            vaults = {j["id"].lower().split("/backupjobs/")[0] for j in doc["backupJobs"]}
            self.assertNotIn(RSV_LOG.lower(), vaults)
            self.assertGreaterEqual(len(vaults), 2, vaults)
            # Its policies and Activity Log were still read.
            self.assertTrue(any(p["id"].lower().startswith(RSV_LOG.lower() + "/") for p in doc["backupPolicies"]))

    def test_the_snapshot_does_not_depend_on_the_order_of_answers(self):
        (doc_a, err_a), (doc_b, err_b) = without_times(self.a[2]), without_times(self.b[2])
        self.assertEqual(err_a, err_b)
        self.assertEqual(doc_a, doc_b)
        self.assertEqual(keys(out("order-a.json")), keys(out("order-b.json")))


class BadAnswers(unittest.TestCase):
    """What Resource Graph answers wrongly makes the scan incomplete, never smaller and clean."""

    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator()

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def scan(self, fault, name):
        self.emu.clear()
        self.emu.fault(fault)
        res = out(name)
        r = kvaudit(self.emu, ["scan", "--engine", "graph", "--out", res, "-q"], auth="cli")
        return r, load(res)

    def test_a_truncated_result_without_skiptoken_is_an_error(self):
        body = {"totalRecords": 5000, "count": 1, "resultTruncated": "true", "facets": [],
                "data": [{"id": "/subscriptions/x/resourceGroups/r/providers/Microsoft.Compute/disks/d"}]}
        r, rep = self.scan({"match": {"method": "POST", "pathRegex": "ResourceGraph"}, "status": 200,
                            "body": body, "times": 1}, "truncated.json")
        self.assertEqual(r.returncode, 3, r.stderr[-1500:])
        self.assertTrue(any(e["code"] == "ResultTruncated" for e in rep["errors"]), rep["errors"])

    def test_a_malformed_answer_is_an_error_not_a_crash(self):
        r, rep = self.scan({"match": {"method": "POST", "pathRegex": "ResourceGraph"}, "malformed": True,
                            "times": 1}, "malformed.json")
        self.assertEqual(r.returncode, 3, r.stderr[-1500:])
        self.assertFalse(rep["scan"]["complete"])
        self.assertTrue(any("Resource Graph query" in e["message"] for e in rep["errors"]), rep["errors"])

    def test_data_that_is_not_rows_is_an_error(self):
        r, rep = self.scan({"match": {"method": "POST", "pathRegex": "ResourceGraph"}, "status": 200,
                            "body": {"totalRecords": 0, "count": 0, "resultTruncated": "false",
                                     "data": {"columns": [], "rows": []}}, "times": 1}, "table.json")
        self.assertEqual(r.returncode, 3, r.stderr[-1500:])
        self.assertTrue(any(e["code"] == "MalformedResponse" for e in rep["errors"]), rep["errors"])


class Fallback(unittest.TestCase):
    """A caller Resource Graph refuses (403): the default engine reads that tenant through ARM;
    --engine graph records the refusal and the scan is incomplete."""

    @classmethod
    def setUpClass(cls):
        demo = load(os.path.join(ARGS["source"], "tests/emulator/scenarios/demo.json"))
        access = demo["emulator"]["access"] + [{"objectId": AVA_TRADERS, "resourceGraph": False}]
        cls.emu = Emulator(overlay={"emulator": {"access": access}})
        d = out("fallback")
        os.makedirs(d, exist_ok=True)
        cls.d = d
        cls.auto = kvaudit(cls.emu, ["scan", "--include-pass", "--out", os.path.join(d, "auto.json"), "-v"],
                           auth="cli")
        cls.graph = kvaudit(cls.emu, ["scan", "--engine", "graph", "--include-pass", "--out",
                                      os.path.join(d, "graph.json"), "-q"], auth="cli")
        cls.arm = kvaudit(cls.emu, ["scan", "--engine", "arm", "--include-pass", "--out",
                                    os.path.join(d, "arm.json"), "-q"], auth="cli")

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def test_default_engine_falls_back_to_arm(self):
        d = self.d
        self.assertIn("Resource Graph refused the caller", self.auto.stderr)
        self.assertEqual(self.auto.returncode, self.arm.returncode)
        self.assertEqual(keys(os.path.join(d, "auto.json")), keys(os.path.join(d, "arm.json")))

    def test_graph_engine_records_the_refusal(self):
        self.assertEqual(self.graph.returncode, 3, self.graph.stderr[-1500:])
        errs = load(os.path.join(self.d, "graph.json"))["errors"]
        self.assertTrue(any(e["status"] == 403 and "Resource Graph query" in e["message"] for e in errs), errs)


TENANT1_SUBS = ("8b2e4f71-3c9a-4d6e-b1f0-7a5c2e9d4b13", "1d7c5a93-e2b4-4f08-9c6d-3b8a1e7f5c24")
RSV_PROD = ("/subscriptions/8b2e4f71-3c9a-4d6e-b1f0-7a5c2e9d4b13/resourceGroups/rg-nw-backup-weu/providers/"
            "Microsoft.RecoveryServices/vaults/rsv-nw-prod-weu")


def span(entries):
    """The first start and the last end of entries (the emulator's log)."""
    starts = [datetime.datetime.fromisoformat(x["time"][:26]).timestamp() for x in entries]
    return min(starts), max(t + x["durationMs"] / 1000.0 for t, x in zip(starts, entries))


class Pipeline(unittest.TestCase):
    """The ARM lists a query calls for start as soon as that query has all its pages, not after every
    query: with Resource Graph pages of 2 rows and 150 ms each, the VM query of the demo's first tenant
    (12 VMs) takes 6 pages, while its Recovery Services vaults (2) take one.  The failures of those
    lists are recorded in the order of before (statusOnly lists, role assignments, protected items),
    though they were queued the other way round here."""

    @classmethod
    def setUpClass(cls):
        emu = Emulator(overlay={"emulator": {"graphPageSize": 2, "faults": [
            {"match": {"method": "GET", "pathRegex": "^/arm/subscriptions/8b2e4f71[^/]*/providers/"
                       "Microsoft.Compute/virtualMachines$", "queryRegex": "statusOnly"}, "times": 0,
             "status": 403},
            {"match": {"method": "GET", "pathRegex": "^/arm/subscriptions/1d7c5a93[^/]*/providers/"
                       "Microsoft.Authorization/roleAssignments$"}, "times": 0, "status": 403},
            {"match": {"method": "GET", "pathRegex": "rsv-nw-prod-weu/backupProtectedItems$"}, "times": 0,
             "status": 403},
            {"match": {"method": "POST", "pathRegex": "ResourceGraph"}, "times": 0, "latencyMs": 150}]}})
        try:
            cls.est = out("pipeline-estate.json")
            cls.r = kvaudit(emu, ["scan", "--engine", "graph", "--include-pass", "--out", out("pipeline.json"),
                                  "--save-estate", cls.est, "-q"], auth="cli")
            cls.log = emu.requests()
        finally:
            emu.stop()

    def test_lists_start_while_queries_still_page(self):
        self.assertEqual(self.r.returncode, 3, self.r.stderr[-1500:])
        _, rg_end = span(graph_posts(self.log))
        items = [x for x in self.log if x["path"].endswith("/backupProtectedItems")]
        self.assertTrue(items)
        first, _ = span(items)
        self.assertLess(first, rg_end - 0.3)   # at least two pages of the VM query were still to come
        # each list once: none left over from a query, none read twice
        gets = [(x["path"].lower(), x["query"]) for x in self.log
                if x["method"] == "GET" and x["path"].startswith("/arm/subscriptions/")]
        self.assertEqual(len(gets), len(set(gets)), sorted(g for g in gets if gets.count(g) > 1))

    def test_list_failures_keep_the_order_of_before(self):
        errs = [(e["scope"], e["status"]) for e in load(self.est)["errors"]]
        self.assertEqual(errs, [
            ("/subscriptions/%s/providers/Microsoft.Compute/virtualMachines" % TENANT1_SUBS[0], 403),
            ("/subscriptions/%s/providers/Microsoft.Authorization/roleAssignments" % TENANT1_SUBS[1], 403),
            (RSV_PROD + "/backupProtectedItems", 403)])


class Summarized(unittest.TestCase):
    """ADE extensions and encrypted disks come one row per VM (summarize ... make_list_if(...) by vm)."""

    def test_a_list_make_list_cut_is_an_error_not_a_smaller_estate(self):
        """make_list() keeps at most maxSize values and drops the rest without an error: kvaudit compares
        the lists with the count of the row and makes the scan incomplete."""
        emu = Emulator(overlay={"emulator": {"graphMakeListMax": 1}})
        try:
            res = out("cut.json")
            r = kvaudit(emu, ["scan", "--engine", "graph", "--out", res, "-q"], auth="cli")
        finally:
            emu.stop()
        self.assertEqual(r.returncode, 3, r.stderr[-1500:])
        rep = load(res)
        self.assertFalse(rep["scan"]["complete"])
        cut = [e for e in rep["errors"] if e["code"] == "ResultTruncated"]
        self.assertTrue(cut, rep["errors"])
        self.assertTrue(all("make_list() returned" in e["message"] for e in cut), cut)
        scopes = {e["scope"].split("/providers/")[1] for e in cut}
        self.assertEqual(scopes, {"Microsoft.Compute/virtualMachines/extensions", "Microsoft.Compute/disks"})


class PartialRefusal(unittest.TestCase):
    """One query of a tenant refused (403) while its others succeed: the default engine hands the tenant to
    ARM before anything was queued from Resource Graph's rows, so the scan equals the ARM engine's, with
    no list read twice and no error left over."""

    def test_refused_first_query_falls_back_cleanly(self):
        emu = Emulator()
        emu.fault({"match": {"method": "POST", "pathRegex": "ResourceGraph"}, "status": 403, "times": 1})
        r, r2, auto, arm, log = scan_then_arm(emu, "partial", ["-v"])
        self.assertIn("Resource Graph refused the caller", r.stderr)
        self.assertEqual(r.returncode, r2.returncode, r.stderr[-1500:])
        self.assertEqual(keys(auto), keys(arm))
        errs = lambda p: sorted((e["scope"].lower(), e["status"], e["code"]) for e in load(p)["errors"])
        self.assertEqual(errs(auto), errs(arm))
        gets = [(x["path"].lower(), x["query"]) for x in log
                if x["method"] == "GET" and x["path"].startswith("/arm/subscriptions/")]
        self.assertEqual(len(gets), len(set(gets)), sorted(g for g in gets if gets.count(g) > 1))


class Shards(unittest.TestCase):
    """Three workers (--shard 1/3, 2/3, 3/3) read one estate; merged, they equal one unsharded scan."""

    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator()
        cls.full = kvaudit(cls.emu, ["collect", "--out", cls.p("full.json"), "-q"], auth="cli")
        cls.parts = []
        for k in (1, 2, 3):
            cls.parts.append(kvaudit(cls.emu, ["collect", "--shard", "%d/3" % k, "--out", cls.p("e%d.json" % k),
                                               "-q"], auth="cli"))
            cls.parts.append(kvaudit(cls.emu, ["scan", "--shard", "%d/3" % k, "--include-pass", "--out",
                                               cls.p("r%d.json" % k), "-q"], auth="cli"))

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    @staticmethod
    def p(name):
        return out("shard-" + name)

    def test_shards_split_the_subscriptions(self):
        self.assertEqual(self.full.returncode, 0, self.full.stderr)
        subs = [sorted(s["subscriptionId"] for s in load(self.p("e%d.json" % k))["subscriptions"]) for k in (1, 2, 3)]
        flat = sorted(x for s in subs for x in s)
        self.assertEqual(flat, sorted(s["subscriptionId"] for s in load(self.p("full.json"))["subscriptions"]))
        self.assertEqual(len(flat), len(set(flat)))
        for k in (1, 2, 3):
            self.assertEqual(load(self.p("e%d.json" % k))["shard"], {"index": k, "count": 3})

    def test_merged_estates_audit_as_the_unsharded_scan(self):
        r = run(["merge", self.p("e1.json"), self.p("e2.json"), self.p("e3.json"), "--out", self.p("merged.json")])
        self.assertEqual(r.returncode, 0, r.stderr)
        a = run(["audit", self.p("merged.json"), "--include-pass", "--out", self.p("a-merged.json"), "-q"])
        b = run(["audit", self.p("full.json"), "--include-pass", "--out", self.p("a-full.json"), "-q"])
        self.assertEqual(a.returncode, b.returncode)
        self.assertEqual(keys(self.p("a-merged.json")), keys(self.p("a-full.json")))
        self.assertEqual(load(self.p("a-merged.json"))["summary"]["byStatus"],
                         load(self.p("a-full.json"))["summary"]["byStatus"])
        self.assertNotIn("shard", load(self.p("merged.json")))

    def test_a_missing_shard_makes_the_merge_incomplete(self):
        r = run(["merge", self.p("e1.json"), self.p("e3.json"), "--out", self.p("two.json")])
        self.assertEqual(r.returncode, 0, r.stderr)
        errs = load(self.p("two.json"))["errors"]
        self.assertTrue(any(e["code"] == "ShardMissing" and "shard 2 of 3" in e["message"] for e in errs))
        a = run(["audit", self.p("two.json"), "-q", "--out", self.p("a-two.json")])
        self.assertEqual(a.returncode, 3)

    def test_merged_reports_keep_totals_errors_and_exit_code(self):
        r = run(["merge", self.p("r1.json"), self.p("r2.json"), self.p("r3.json"), "--out", self.p("rm.json")])
        m = load(self.p("rm.json"))
        parts = [load(self.p("r%d.json" % k)) for k in (1, 2, 3)]
        self.assertEqual(r.returncode, m["summary"]["exitCode"], r.stderr)
        self.assertEqual(len(m["errors"]), sum(len(p["errors"]) for p in parts))
        listed = sum(len(p["findings"]) for p in parts)
        tenant_dupes = listed - len(m["findings"])
        self.assertEqual(sum(m["summary"]["byStatus"].values()),
                         sum(sum(p["summary"]["byStatus"].values()) for p in parts) - tenant_dupes)
        self.assertEqual(m["summary"]["subjects"]["vm"], sum(p["summary"]["subjects"]["vm"] for p in parts))
        self.assertEqual(m["summary"]["subjects"]["tenant"], max(p["summary"]["subjects"]["tenant"] for p in parts))
        tenant_keys = [(f["rule"], f["tenant"]) for f in m["findings"] if f["subject"] == "tenant"]
        self.assertEqual(len(tenant_keys), len(set(tenant_keys)))
        self.assertEqual(m["scan"]["complete"], all(p["scan"]["complete"] for p in parts) and not m["errors"])
        if m["errors"] or not m["scan"]["complete"]:
            self.assertEqual(r.returncode, 3)

    def test_a_report_with_an_error_makes_the_merge_incomplete(self):
        rep = load(self.p("r1.json"))
        rep["errors"] = [{"scope": "/subscriptions/x", "status": 403, "code": "AuthorizationFailed", "message": "no"}]
        with open(self.p("r1-err.json"), "w") as f:
            json.dump(rep, f)
        clean = load(self.p("r2.json"))
        clean["errors"], clean["scan"]["complete"] = [], True
        with open(self.p("r2-clean.json"), "w") as f:
            json.dump(clean, f)
        r = run(["merge", self.p("r1-err.json"), self.p("r2-clean.json"), "--out", self.p("rm-err.json")])
        self.assertEqual(r.returncode, 3)
        self.assertFalse(load(self.p("rm-err.json"))["scan"]["complete"])

    def test_merge_refuses_mismatched_inputs(self):
        other = load(self.p("r2.json"))
        other["tool"]["version"] = "9.9.9"
        with open(self.p("r2-other.json"), "w") as f:
            json.dump(other, f)
        cat = load(self.p("r2.json"))
        cat["tool"]["rules"] += 1
        with open(self.p("r2-cat.json"), "w") as f:
            json.dump(cat, f)
        cases = [
            ([self.p("r1.json"), self.p("r2-other.json")], "tool versions or rule catalogs"),
            ([self.p("r1.json"), self.p("r2-cat.json")], "tool versions or rule catalogs"),
            ([self.p("e1.json"), self.p("r2.json")], "merge estates with estates"),
            ([self.p("e1.json"), self.p("e2.json"), self.p("e1.json")], "overlap"),
            ([self.p("r3.json"), self.p("r3.json")], "overlap"),
            ([self.p("r1.json"), self.p("r2.json"), self.p("r1.json")], "overlap"),
            ([self.p("full.json"), self.p("e2.json")], "overlap"),
        ]
        for files, words in cases:
            r = run(["merge"] + files + ["--out", self.p("refused.json")])
            self.assertEqual(r.returncode, 2, (files, r.stderr))
            self.assertIn(words, r.stderr)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertFalse(os.path.exists(self.p("refused.json")))
        r = run(["merge"])
        self.assertEqual(r.returncode, 2)

    def test_bad_shard_options(self):
        for bad in ("0/3", "4/3", "x", "1/0"):
            r = kvaudit(self.emu, ["collect", "--shard", bad, "--out", self.p("x.json")], auth="cli")
            self.assertEqual(r.returncode, 2, bad)
            self.assertIn("--shard takes K/N", r.stderr)
        r = kvaudit(self.emu, ["collect", "--engine", "sql", "--out", self.p("x.json")], auth="cli")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--engine takes graph or arm", r.stderr)


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        shutil.rmtree(OUT, ignore_errors=True)
    raise SystemExit(rc)
