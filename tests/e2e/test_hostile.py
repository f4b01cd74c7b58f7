#!/usr/bin/env python3
"""Hostile input: estates and emulator scenarios whose names, tags, error messages, IDs and sizes
are chosen by an attacker (anyone with write access to a VM, a disk or a vault can set its name
and tags; Azure's error messages echo them; an estate file may come from anywhere).

Run by ctest as: test_hostile.py --kvaudit BIN --source REPO
Asserts: no crash and the documented exit code; CSV cells neutralised (never a formula); HTML
escaped (parsed: no element or attribute from data); no terminal control character in the human
summary, the inventory table or stderr; Markdown rows stay rows, JUnit is well-formed XML, SARIF
and JSON parse; and, from the emulator's request log, that no path from a hostile ID (.., %2F, ?,
#, whitespace) is ever requested and nothing goes to a host outside the cloud.
Prints 'N passed, N failed'.
"""
import copy
import csv
import glob
import html.parser
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

from emulator_helper import ARGS, Emulator, kvaudit, main

FORMULA = "=cmd|' /C calc'!A0"
HOSTILE = [
    FORMULA, "+SUM(1+1)", "-2+3", "@SUM(A1:A2)", "\t=1+1", "\r=1+1", '"quoted", with, commas',
    "<script>alert(1)</script>", "</script><img src=x onerror=alert(2)>", "line1\r\nline2",
    "\x1b[2J\x1b[31mred\x1b]0;title\x07\x1b[0m", "nul\u0000byte", "| pipe | row |", "&amp;&lt;",
    "\u202egnp.exe", "\x9bC1",
]
SUB_PROD = "8b2e4f71-3c9a-4d6e-b1f0-7a5c2e9d4b13"
# Control characters a terminal acts on: C0 except newline, DEL, C1 (as characters).
TERMINAL_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f\u0080-\u009f]")
FORMULA_LEADERS = ("=", "+", "-", "@", "\t", "\r")
csv.field_size_limit(1 << 26)     # the 1 MB name is one cell


def demo():
    with open(os.path.join(ARGS["source"], "examples/demo-estate.json")) as f:
        return json.load(f)


def kv(args, cwd=None, timeout=300):
    return subprocess.run([ARGS["kvaudit"]] + args, cwd=cwd, capture_output=True, timeout=timeout)


def text(b):
    return b.decode("utf-8", errors="strict")


class Page(html.parser.HTMLParser):
    """Every element and attribute of an HTML document (the report is self-contained)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.bad, self.data = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        # (the report's own template uses meta, style and an inline svg chart, never these)
        if tag in ("script", "iframe", "object", "embed", "img", "form", "base", "link"):
            self.bad.append(tag)
        for k, v in attrs:
            if k.startswith("on") or (v or "").strip().lower().startswith("javascript:"):
                self.bad.append("%s[%s]" % (tag, k))

    def handle_data(self, data):
        self.data.append(data)


def hostile_estate(big=True):
    """The demo with attacker-chosen names, tags and errors (the IDs, and so the verdicts, kept)."""
    e = demo()
    for i, vm in enumerate(e["virtualMachines"]):
        vm["name"] = HOSTILE[i % len(HOSTILE)] + " vm"
        vm["tags"] = {h: h for h in HOSTILE}
    for i, v in enumerate(e["vaults"]):
        v["name"] = HOSTILE[(i + 3) % len(HOSTILE)] + " vault"
        v["tags"] = {"owner": HOSTILE[i % len(HOSTILE)]}
    if big:
        e["virtualMachines"][-1]["name"] = "A" * (1 << 20)             # a 1 MB name
        e["virtualMachines"][1]["tags"]["huge"] = "<script>" * 200000   # 1.6 MB of markup
    e["errors"] = [{"scope": h, "status": 403, "code": h, "message": h} for h in HOSTILE]
    return e


class Checks:
    """Format checks shared by the offline and the live suites."""

    def check_csv(self, path):
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
        self.assertGreater(len(rows), 1)
        width = len(rows[0])
        for row in rows:
            self.assertEqual(len(row), width, row[:3])
            for cell in row:
                self.assertFalse(cell.startswith(FORMULA_LEADERS), repr(cell[:60]))
        return rows

    def check_html(self, path):
        with open(path, encoding="utf-8") as f:
            t = f.read()
        p = Page()
        p.feed(t)
        p.close()
        self.assertEqual(p.bad, [])
        self.assertNotIn("<script>alert", t)
        self.assertNotIn("\x1b", t)
        self.assertNotIn("\x00", t)
        return "".join(p.data)

    def check_junit(self, path):
        with open(path, "rb") as f:
            root = ET.fromstring(f.read())
        self.assertGreater(int(root.get("tests")), 0)

    def check_sarif(self, path):
        with open(path, encoding="utf-8") as f:
            s = json.load(f)
        self.assertEqual(s["version"], "2.1.0")
        self.assertTrue(s["runs"][0]["results"])

    def check_md(self, path):
        with open(path, encoding="utf-8") as f:
            t = f.read()
        # C0, DEL (ESC above all) and C1
        self.assertIsNone(re.search("[\x00-\x08\x0b-\x1f\x7f\u0080-\u009f]", t))
        self.assertNotIn("<script", t)
        for table in re.split(r"\n\s*\n", t):
            rows = [r for r in table.splitlines() if r.startswith("|")]
            if not rows:
                continue
            widths = {len(re.findall(r"(?<!\\)\|", r)) for r in rows}
            self.assertEqual(len(widths), 1, rows[:3])

    def check_terminal(self, b):
        t = text(b) if isinstance(b, bytes) else b
        m = TERMINAL_CONTROL.search(t)
        self.assertIsNone(m, repr(t[max(0, m.start() - 40):m.start() + 40]) if m else "")

    def check_reports(self, d):
        files = {os.path.splitext(p)[1]: p for p in glob.glob(os.path.join(d, "kvaudit-*"))}
        self.assertEqual(set(files), {".json", ".csv", ".html", ".sarif", ".xml", ".md"}, files)
        with open(files[".json"], encoding="utf-8") as f:
            rep = json.load(f)
        self.check_csv(files[".csv"])
        self.check_html(files[".html"])
        self.check_junit(files[".xml"])
        self.check_sarif(files[".sarif"])
        self.check_md(files[".md"])
        return rep


ALL = "json,csv,html,sarif,junit,md"


class HostileEstate(unittest.TestCase, Checks):
    """kvaudit audit / inventory / report on an attacker-shaped snapshot."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="kvaudit-hostile-")
        cls.d = cls.tmp.name
        cls.path = os.path.join(cls.d, "hostile.json")
        with open(cls.path, "w") as f:
            json.dump(hostile_estate(), f)
        cls.out = os.path.join(cls.d, "out")
        os.makedirs(cls.out)
        cls.r = kv(["audit", cls.path, "--format", ALL, "--out", cls.out, "--include-pass"], cwd=cls.d)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_exit_3_for_the_estate_errors(self):
        self.assertEqual(self.r.returncode, 3, self.r.stderr[-2000:])

    def test_every_format_is_safe(self):
        rep = self.check_reports(self.out)
        names = {f.get("vmName") for f in rep["findings"]}
        self.assertIn(FORMULA + " vm", names)             # kept verbatim in JSON
        self.assertIn("A" * (1 << 20), names)

    def test_the_formula_is_neutralised_not_dropped(self):
        rows = self.check_csv(glob.glob(os.path.join(self.out, "kvaudit-*.csv"))[0])
        cells = [c for r in rows for c in r]
        self.assertTrue("'" + FORMULA + " vm" in cells, "the formula-named VM is not in the CSV")

    def test_the_summary_on_stderr_has_no_control_character(self):
        self.assertTrue(self.r.stderr)
        self.check_terminal(self.r.stderr)

    def test_inventory_table_and_csv(self):
        r = kv(["inventory", self.path, "--format", "table"])
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.check_terminal(r.stdout + r.stderr)
        r = kv(["inventory", self.path, "--format", "csv"])
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        for row in csv.reader(io.StringIO(text(r.stdout))):
            for cell in row:
                self.assertFalse(cell.startswith(FORMULA_LEADERS), repr(cell[:60]))

    def test_report_re_renders_it_safely(self):
        src = glob.glob(os.path.join(self.out, "kvaudit-*.json"))[0]
        d = os.path.join(self.d, "again")
        os.makedirs(d)
        r = kv(["report", src, "--format", "html,csv,md,junit,sarif", "--out", d])
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.check_terminal(r.stderr)
        self.check_html(glob.glob(os.path.join(d, "*.html"))[0])
        self.check_csv(glob.glob(os.path.join(d, "*.csv"))[0])

    def test_deep_nesting_is_bad_input_in_one_line(self):
        e = demo()
        e["virtualMachines"][0]["properties"]["deep"] = "@DEEP@"
        p = os.path.join(self.d, "deep.json")
        with open(p, "w") as f:      # 10,000 levels (Python's own encoder stops at 1,000)
            f.write(json.dumps(e).replace('"@DEEP@"', "[" * 10000 + "0" + "]" * 10000))
        r = kv(["audit", p, "--out", "-"])
        self.assertEqual(r.returncode, 2, r.stderr[-2000:])
        lines = text(r.stderr).strip().splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("deep.json", lines[0])

    def test_deep_nesting_in_a_rule_file_is_bad_input(self):
        d = os.path.join(self.d, "rules")
        os.makedirs(d, exist_ok=True)
        cond = '{"not": ' * 10000 + '{"fact": "vm.name", "eq": "x"}' + "}" * 10000
        with open(os.path.join(d, "deep.json"), "w") as f:
            f.write(json.dumps({"id": "X-DEEP-001", "title": "t", "severity": "low", "subject": "vm",
                                "require": "@C@", "message": "m"}).replace('"@C@"', cond))
        r = kv(["rules", "check", d])
        self.assertEqual(r.returncode, 2, r.stderr[-2000:])
        self.check_terminal(r.stderr)

    def test_nul_and_control_escapes_in_ids_do_not_crash(self):
        e = demo()
        e["virtualMachines"][0]["id"] += "\u0000/../x"
        e["vaults"][0]["id"] = "/subscriptions/%s/resourceGroups/r/providers/Microsoft.KeyVault/vaults/a\u001b[2Jb" \
            % SUB_PROD
        p = os.path.join(self.d, "nul.json")
        with open(p, "w") as f:
            json.dump(e, f)
        os.makedirs(os.path.join(self.d, "nul"))
        r = kv(["audit", p, "--format", ALL, "--out", os.path.join(self.d, "nul")])
        self.assertIn(r.returncode, (1, 2, 3), r.stderr[-2000:])
        self.check_terminal(r.stderr)
        if r.returncode != 2:
            self.check_reports(os.path.join(self.d, "nul"))


def hostile_id(kind, tail):
    """An ARM ID of the production subscription whose last part is hostile (marker zqhx)."""
    rg = "/subscriptions/%s/resourceGroups/rg-nw-erp-weu/providers/" % SUB_PROD
    return rg + kind + "/" + tail


HOSTILE_TAILS = ["zqhx1/../../../../zqhxup", "zqhx2%2F..%2F..%2Fzqhxenc", "zqhx3?api-version=1&zqhxq=1",
                 "zqhx4#zqhxfrag", "zqhx5 zqhxspace", "zqhx6\tzqhxtab", "..", "zqhx7/%2e%2e/zqhxdot",
                 "zqhx8\r\nX-Injected: zqhxhdr"]


def hostile_world():
    """Overlay: hostile names and tags on real resources, and extra VMs, disks and vaults whose IDs
    and key URLs would lead a careless client elsewhere."""
    e = demo()
    vms, disks, vaults = copy.deepcopy(e["virtualMachines"]), copy.deepcopy(e["disks"]), copy.deepcopy(e["vaults"])
    for i, vm in enumerate(vms):
        vm["tags"] = {h: h for h in HOSTILE}
    for i, v in enumerate(vaults):
        v["tags"] = {"owner": HOSTILE[i % len(HOSTILE)]}
    template = next(v for v in vms if v["id"].split("/")[2] == SUB_PROD and "encryption" in json.dumps(v).lower())
    for n, tail in enumerate(HOSTILE_TAILS):
        vm = copy.deepcopy(template)
        vm["id"] = hostile_id("Microsoft.Compute/virtualMachines", tail)
        vm["name"] = tail
        vm["tags"] = {"h": HOSTILE[n % len(HOSTILE)]}
        vms.append(vm)
        v = copy.deepcopy(next(x for x in vaults if x["id"].split("/")[2] == SUB_PROD))
        v["id"] = hostile_id("Microsoft.KeyVault/vaults", tail)
        v["name"] = "zqhxvault%d" % n        # the emulator makes a host name of it
        vaults.append(v)
    # A disk whose key URL and source vault point through dot segments and encoded slashes.
    for d in disks:
        for es in (d.get("properties", {}).get("encryptionSettingsCollection") or {}).get("encryptionSettings", []):
            kek = es.get("keyEncryptionKey")
            if kek and d["id"].split("/")[2] == SUB_PROD:
                kek["keyUrl"] = kek["keyUrl"].split("/keys/")[0] + "/keys/zqhxk/../../secrets/zqhxsecret/1"
                kek["sourceVault"]["id"] = hostile_id("Microsoft.KeyVault/vaults", "zqhxv%2F..%2Fx")
                break
    return {"virtualMachines": vms, "disks": disks, "vaults": vaults}


class HostileLive(unittest.TestCase, Checks):
    """kvaudit scan of an emulator whose resources and error messages are hostile."""

    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator(overlay=hostile_world())
        cls.emu.clear()
        # Azure's error messages echo names; this one is all attack.
        cls.emu.fault({"match": {"pathRegex": "Microsoft.RecoveryServices/vaults$"}, "times": 0, "status": 403,
                       "body": {"error": {"code": FORMULA, "message": "\r\n".join(HOSTILE) + "\x1b[2J"}}})
        cls.out = os.path.join(cls.emu.dir, "reports")
        os.makedirs(cls.out)
        cls.r = kvaudit(cls.emu, ["scan", "--data-plane", "--include-pass", "--format", ALL, "--out", cls.out,
                                  "--save-estate", "estate.json"], timeout=300)
        cls.log = cls.emu.requests()

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def test_exit_3_and_the_formats_are_safe(self):
        self.assertEqual(self.r.returncode, 3, self.r.stderr[-3000:])
        rep = self.check_reports(self.out)
        self.assertFalse(rep["scan"]["complete"])

    def test_stderr_has_no_control_character(self):
        self.check_terminal(self.r.stderr)
        self.check_terminal(self.r.stdout)

    def test_no_path_from_a_hostile_id_is_requested(self):
        self.assertGreater(len(self.log), 20)
        for x in self.log:
            self.assertNotIn("zqhx", (x["path"] + "?" + (x["query"] or "")).lower(), x)

    def test_every_request_stays_on_the_cloud_endpoints(self):
        port = self.emu.port
        for x in self.log:
            host = x["host"].lower()
            self.assertTrue(host == "127.0.0.1:%d" % port or re.fullmatch(r"[a-z0-9-]+\.vault\.emulator\.test(:443)?",
                                                                         host), x)
            self.assertNotIn("..", x["path"].split("/"), x)

    def test_the_arm_engine_requests_no_hostile_path_either(self):
        # The default engine reads through Resource Graph; the ARM engine GETs each VM by its ID.
        self.emu.clear()
        r = kvaudit(self.emu, ["scan", "--engine", "arm", "--data-plane", "-q", "--out", "arm.json"], timeout=300)
        self.assertIn(r.returncode, (1, 3), r.stderr[-2000:])
        log = self.emu.requests()
        self.assertTrue(any("/virtualMachines/" in x["path"] for x in log))
        for x in log:
            self.assertNotIn("zqhx", (x["path"] + "?" + (x["query"] or "")).lower(), x)
            self.assertNotIn("..", x["path"].split("/"), x)

    def test_hostile_ids_are_reported_not_followed(self):
        est = json.load(open(os.path.join(self.emu.dir, "estate.json")))
        blob = json.dumps(est["errors"])
        self.assertIn("zqhx", blob)

    def test_a_100_mb_response_is_read_or_refused_without_a_crash(self):
        self.emu.clear()
        self.emu.fault({"match": {"pathRegex": SUB_PROD + "/providers/Microsoft.Compute/disks$"},
                        "padBytes": 100 * 1000 * 1000, "times": 1})
        r = kvaudit(self.emu, ["scan", "-q", "--out", "big.json"], timeout=300)
        self.assertIn(r.returncode, (1, 3), r.stderr[-2000:])
        self.check_terminal(r.stderr)
        rep = json.load(open(os.path.join(self.emu.dir, "big.json")))
        self.assertTrue(rep["findings"])

    def test_huge_arrays(self):
        e = demo()
        disks = copy.deepcopy(e["disks"])
        base = next(d for d in disks if d["id"].split("/")[2] == SUB_PROD)
        for i in range(8000):
            d = copy.deepcopy(base)
            d["id"] = base["id"] + "x%05d" % i
            d["name"] = base["name"] + "x%05d" % i
            d.get("properties", {}).pop("encryptionSettingsCollection", None)
            disks.append(d)
        vaults = copy.deepcopy(e["vaults"])
        v = next(x for x in vaults if x["id"].split("/")[2] == SUB_PROD and not x["properties"].get(
            "enableRbacAuthorization"))
        extra = {"tenantId": v["properties"]["tenantId"], "objectId": "00000000-0000-0000-0000-000000000000",
                 "permissions": {"keys": ["get"] * 50, "secrets": [], "certificates": []}}
        v["properties"]["accessPolicies"] = v["properties"]["accessPolicies"] + [extra] * 5000
        emu = Emulator(overlay={"disks": disks, "vaults": vaults, "emulator": {"pageSize": 50000}})
        try:
            os.makedirs(os.path.join(emu.dir, "huge"))
            r = kvaudit(emu, ["scan", "-q", "--format", "json,csv,html", "--out", "huge"], timeout=300)
            self.assertIn(r.returncode, (1, 3), r.stderr[-2000:])
            self.check_terminal(r.stderr)
            self.check_csv(glob.glob(os.path.join(emu.dir, "huge", "*.csv"))[0])
        finally:
            emu.stop()


if __name__ == "__main__":
    sys.exit(main(__name__))
