#!/usr/bin/env python3
"""
End-to-end tests of the report formats and `kvaudit report`.

    python3 tests/e2e/test_formats.py --kvaudit build/kvaudit --source .  [unittest args]

Audits examples/demo-estate.json once (--include-pass, JSON), then renders
that saved report with `kvaudit report` in every format and checks each
against the JSON: SARIF 2.1.0's required structure, JUnit counts (parsed
with xml.etree), the HTML summary cards (parsed with html.parser) and the
absence of scripts and external resources, the Markdown tables.  A report
with hostile text (markup, quotes, "]]>", control characters, "|") must
still give a well-formed JUnit file, parseable SARIF and HTML without a
script.  Bad report inputs exit 2 with one line on stderr.

A headless-browser check of the HTML is not part of this suite yet.

Python 3 standard library only.  Prints "N passed, N failed" last and exits
non-zero when any test failed.
"""
import argparse
import copy
import glob
import html.parser
import json
import os
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

KVAUDIT = None          # path of the binary (--kvaudit)
SOURCE = None           # repository root (--source)
TIMEOUT = 30
STATUSES = ("fail", "error", "skipped", "suppressed", "pass")
FORMATS = ("html", "sarif", "junit", "md", "csv", "json")


class Result:
    def __init__(self, p):
        self.rc, self.out, self.err = p.returncode, p.stdout, p.stderr

    def __repr__(self):
        return "rc=%d\nstdout: %s\nstderr: %s" % (self.rc, self.out[-2000:], self.err[-2000:])


def kv(*args, cwd=None, env=None):
    p = subprocess.run([KVAUDIT] + list(args), cwd=cwd, capture_output=True, text=True,
                       timeout=TIMEOUT, errors="replace", env=env, stdin=subprocess.DEVNULL)
    return Result(p)


def one_line_error(test, r, *needles):
    test.assertEqual(r.rc, 2, r)
    lines = [line for line in r.err.splitlines() if line.strip()]
    test.assertEqual(len(lines), 1, r)
    test.assertTrue(lines[0].startswith("kvaudit: "), r)
    for n in needles:
        test.assertIn(n, lines[0], r)


class Page(html.parser.HTMLParser):
    """Collects the summary cards, every src/href, and script/iframe/object elements."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.cards = {}         # card id (without "card-") -> text of its .num
        self.links = []         # (tag, attribute, value)
        self.forbidden = []     # tags that must not appear
        self.stack = []
        self._card = None
        self._num = False
        self.text = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "iframe", "object", "embed", "link", "img", "form", "base"):
            self.forbidden.append(tag)
        for k, v in attrs:
            if k in ("src", "href", "action", "xlink:href", "data") and v is not None:
                self.links.append((tag, k, v))
            if k.startswith("on"):
                self.forbidden.append("%s[%s]" % (tag, k))
        if tag == "div" and (a.get("id") or "").startswith("card-"):
            self._card = a["id"][5:]
        elif tag == "div" and self._card and a.get("class") == "num":
            self._num = True

    def handle_endtag(self, tag):
        if tag == "div" and self._num:
            self._num = False
            self._card = None

    def handle_data(self, data):
        self.text.append(data)
        if self._num and self._card:
            self.cards[self._card] = self.cards.get(self._card, "") + data


def parse_html(text):
    p = Page()
    p.feed(text)
    p.close()
    return p


def failing_rows(md):
    """The data rows of the Markdown's failing findings table."""
    tail = md.split("### Failing findings", 1)[1]
    return [line for line in tail.splitlines() if line.startswith("| ") and not line.startswith("| severity |")]


def render(report_path, fmt, outdir):
    """Renders report_path in fmt to a file in outdir; returns the text."""
    out = os.path.join(outdir, "out." + fmt)
    r = kv("report", report_path, "--format", fmt, "--out", out)
    if r.rc != 0:
        raise AssertionError("kvaudit report --format %s failed: %r" % (fmt, r))
    with open(out, encoding="utf-8") as f:
        return f.read()


class Demo(unittest.TestCase):
    """The demo's saved report, rendered in every format."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.d = cls.tmp.name
        cls.report_path = os.path.join(cls.d, "report.json")
        r = kv("audit", os.path.join(SOURCE, "examples", "demo-estate.json"), "--include-pass",
               "--format", "json", "--out", cls.report_path, "-q")
        if r.rc not in (0, 1):
            raise AssertionError("audit of the demo failed: %r" % r)
        with open(cls.report_path, encoding="utf-8") as f:
            cls.report = json.load(f)
        cls.text = {fmt: render(cls.report_path, fmt, cls.d) for fmt in FORMATS}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def by_status(self, status):
        return sum(1 for f in self.report["findings"] if f["status"] == status)

    # ---- SARIF
    def test_sarif_required_structure(self):
        s = json.loads(self.text["sarif"])
        self.assertEqual(s["version"], "2.1.0")
        self.assertIn("sarif-schema-2.1.0", s["$schema"])
        self.assertEqual(len(s["runs"]), 1)
        run = s["runs"][0]
        driver = run["tool"]["driver"]
        self.assertEqual(driver["name"], "kvaudit")
        self.assertEqual(driver["version"], self.report["tool"]["version"])
        self.assertTrue(driver["informationUri"].startswith("https://"))
        rule_ids = [r["id"] for r in driver["rules"]]
        self.assertEqual(len(rule_ids), len(set(rule_ids)))
        self.assertEqual(set(rule_ids), {f["rule"] for f in self.report["findings"]})
        for rule in driver["rules"]:
            for k in ("shortDescription", "fullDescription", "help"):
                self.assertTrue(rule[k]["text"], (rule["id"], k))
            self.assertIn(rule["defaultConfiguration"]["level"], ("error", "warning", "note"))
        results = run["results"]
        want = [f for f in self.report["findings"] if f["status"] in ("fail", "error", "suppressed")]
        self.assertEqual(len(results), len(want))
        self.assertEqual(len(results), self.by_status("fail") + self.by_status("error")
                         + self.by_status("suppressed"))
        fingerprints = set()
        for res, f in zip(results, want):
            self.assertEqual(res["ruleId"], f["rule"])
            self.assertEqual(driver["rules"][res["ruleIndex"]]["id"], f["rule"])
            self.assertIn(res["level"], ("error", "warning", "note", "none"))
            expected = {"critical": "error", "high": "error", "medium": "warning", "low": "note",
                        "info": "note"}[f["severity"]]
            if f["status"] == "fail":
                self.assertEqual((res["kind"], res["level"]), ("fail", expected))
            self.assertTrue(res["message"]["text"])
            self.assertGreaterEqual(len(res["locations"]), 1)
            fqns = [l["fullyQualifiedName"] for loc in res["locations"]
                    for l in loc.get("logicalLocations", [])]
            for key in ("vm", "vault"):
                if f[key]:
                    self.assertIn(f[key], fqns)
            self.assertTrue(fqns)
            fingerprints.add(res["partialFingerprints"]["kvaudit/v1"])
        self.assertEqual(len(fingerprints), len(results), "fingerprints are unique per rule and subject")

    def test_sarif_fingerprints_are_stable(self):
        again = render(self.report_path, "sarif", self.d)
        self.assertEqual(json.loads(again)["runs"][0]["results"],
                         json.loads(self.text["sarif"])["runs"][0]["results"])

    # ---- JUnit
    def test_junit_counts_equal_the_report(self):
        root = ET.fromstring(self.text["junit"].encode("utf-8"))
        self.assertEqual(root.tag, "testsuites")
        findings = self.report["findings"]
        self.assertEqual(int(root.get("tests")), len(findings))
        self.assertEqual(int(root.get("failures")), self.by_status("fail"))
        self.assertEqual(int(root.get("errors")), self.by_status("error"))
        self.assertEqual(int(root.get("skipped")), self.by_status("skipped") + self.by_status("suppressed"))
        # --include-pass: every finding but the skipped ones counted per rule and reason is listed,
        # so the counts equal the summary's less those.
        bs = self.report["summary"]["byStatus"]
        collapsed = sum(r["count"] for r in self.report["summary"]["skippedByRule"])
        self.assertGreater(collapsed, 0, "the demo has skipped findings")
        self.assertEqual(int(root.get("tests")), sum(bs.values()) - collapsed)
        self.assertEqual(int(root.get("skipped")), bs["skipped"] - collapsed + bs["suppressed"])
        self.assertEqual(int(root.get("failures")), bs["fail"])
        suites = root.findall("testsuite")
        self.assertEqual([s.get("name") for s in suites],
                         list(dict.fromkeys(f["rule"] for f in findings)))
        for s in suites:
            cases = s.findall("testcase")
            self.assertEqual(int(s.get("tests")), len(cases))
            self.assertEqual(int(s.get("failures")), sum(1 for c in cases if c.find("failure") is not None))
            self.assertEqual(int(s.get("errors")), sum(1 for c in cases if c.find("error") is not None))
            self.assertEqual(int(s.get("skipped")), sum(1 for c in cases if c.find("skipped") is not None))
            for k in ("timestamp", "hostname", "time"):
                self.assertIsNotNone(s.get(k), k)
            for c in cases:
                self.assertEqual(c.get("classname"), s.get("name"))
                self.assertTrue(c.get("name"))
        binding = next(f for f in findings if f["subject"] == "binding" and f["status"] == "fail")
        names = [c.get("name") for c in root.iter("testcase") if c.get("classname") == binding["rule"]]
        self.assertIn("%s -> %s" % (binding["vmName"], binding["vaultName"]), names)

    def test_sarif_and_junit_carry_the_azure_backup_verdict(self):
        """docs/report.md "azureBackup": SARIF's result.properties.azureBackup is the JSON report's object;
        JUnit has it as one line in the <failure> text, or a passing/skipped case's <system-out>."""
        findings = self.report["findings"]
        self.assertEqual({f["azureBackup"]["status"] for f in findings if "azureBackup" in f},
                         {"confirmed", "not-seen", "agrees", "contradicted", "unprotected"})
        want = [f for f in findings if f["status"] in ("fail", "error", "suppressed")]
        results = json.loads(self.text["sarif"])["runs"][0]["results"]
        self.assertEqual(len(results), len(want))
        for res, f in zip(results, want):
            self.assertEqual(res["properties"].get("azureBackup"), f.get("azureBackup"), f["rule"])
        self.assertTrue(any("azureBackup" in r["properties"] for r in results))

        def line(ab):
            st, job = ab["status"], ab["jobId"]
            if st in ("confirmed", "contradicted"):
                return "%s by Azure Backup: backup job %s failed at %s with %s" % (
                    st, job.rsplit("/", 1)[-1], ab["time"], ab["errorCode"])
            if st in ("not-seen", "agrees"):
                return ("not confirmed by Azure Backup" if st == "not-seen" else "Azure Backup agrees") + \
                    ": no backup job of the VM failed with the permission error"
            return "Azure Backup: %s: %s" % (st, ab["reason"] or "the VM has no protected item")

        root = ET.fromstring(self.text["junit"].encode("utf-8"))
        checked = 0
        for s in root.findall("testsuite"):
            listed = [f for f in findings if f["rule"] == s.get("name")]
            cases = s.findall("testcase")
            self.assertEqual(len(cases), len(listed))
            for c, f in zip(cases, listed):
                body = c.find("failure") if c.find("failure") is not None else c.find("error")
                lines = ((body.text or "") if body is not None else "").splitlines()
                lines += [o.text or "" for o in c.findall("system-out")]
                said = [x for x in lines if "by Azure Backup:" in x or x.startswith("Azure Backup")]
                self.assertEqual(said, [line(f["azureBackup"])] if "azureBackup" in f else [], (f["rule"], c.get("name")))
                checked += "azureBackup" in f
        self.assertEqual(checked, sum(1 for f in findings if "azureBackup" in f))

    # ---- HTML
    def test_html_cards_equal_the_summary(self):
        page = parse_html(self.text["html"])
        s = self.report["summary"]
        want = {st: s["byStatus"][st] for st in STATUSES}
        want.update({"failing": s["failing"], "adeVms": s["adeVms"], "vaults": s["subjects"]["vault"],
                     "tenants": s["subjects"]["tenant"], "exitCode": s["exitCode"]})
        got = {k: int(v.strip()) for k, v in page.cards.items()}
        self.assertEqual(got, want)

    def test_html_is_self_contained(self):
        page = parse_html(self.text["html"])
        self.assertEqual(page.forbidden, [])
        refs = {u for f in self.report["findings"] for u in f["references"]}
        for tag, attr, value in page.links:
            if value.startswith("#"):
                continue
            self.assertEqual((tag, attr), ("a", "href"), value)
            self.assertTrue(value.startswith("https://"), value)
            self.assertIn(value, refs, "only reference links may point outside the page")
        self.assertNotIn("url(", self.text["html"].split("</style>")[0].split("<style>")[1])
        self.assertNotIn("@import", self.text["html"])
        self.assertIn("Content-Security-Policy", self.text["html"])

    def test_html_shows_matrix_chart_and_remediation(self):
        t = self.text["html"]
        self.assertIn("<svg", t)
        for v in self.report["inventory"]["vaults"]:
            self.assertIn(v["name"], t)
        self.assertIn("az keyvault set-policy", t)
        self.assertIn("Set-AzKeyVaultAccessPolicy", t)
        self.assertIn("az role assignment create", t)
        self.assertIn("kvaudit fix --rule KVA-BKP-001 --vault /subscriptions/", t)
        page = parse_html(t)
        text = "".join(page.text)
        for f in self.report["findings"]:
            if f["status"] == "fail":
                self.assertIn(f["message"], text)

    # ---- Markdown
    def test_markdown_tables(self):
        md = self.text["md"]
        s = self.report["summary"]
        self.assertIn("| **total** | **%d** |" % s["byStatus"]["fail"], md)
        rows = failing_rows(md)
        self.assertEqual(len(rows), min(100, self.by_status("fail") + self.by_status("error")))
        self.assertIn("Exit code **%d**" % s["exitCode"], md)

    # ---- the command
    def test_directory_output_names_files_after_the_report_time(self):
        out = os.path.join(self.d, "all") + "/"
        r = kv("report", self.report_path, "--format", ",".join(FORMATS), "--out", out)
        self.assertEqual(r.rc, 0, r)
        stamp = self.report["scan"]["generatedAt"].replace("-", "").replace(":", "")
        names = sorted(os.listdir(out))
        self.assertEqual(names, sorted("kvaudit-%s.%s" % (stamp, e)
                                       for e in ("html", "sarif", "junit.xml", "md", "csv", "json")))

    def test_json_round_trips(self):
        self.assertEqual(json.loads(self.text["json"]), self.report)

    def test_stdout_and_default_format(self):
        r = kv("report", self.report_path, "--format", "md", "--out", "-")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out, self.text["md"])
        d = os.path.join(self.d, "default")
        os.mkdir(d)
        r = kv("report", self.report_path, cwd=d)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual([n[-5:] for n in os.listdir(d)], [".html"])

    def test_formats_work_for_audit_too(self):
        d = os.path.join(self.d, "audit-out")
        r = kv("audit", os.path.join(SOURCE, "examples", "demo-estate.json"), "--format",
               "html,sarif,junit,md", "--out", d + "/", "-q")
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(sorted(n.split(".", 1)[1] for n in os.listdir(d)),
                         ["html", "junit.xml", "md", "sarif"])


class Suppressed(unittest.TestCase):
    """A demo audit with one accepted risk: every format shows it as suppressed, with its reason."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.d = cls.tmp.name
        if "--suppressions" not in kv("audit", "--help").out:
            raise unittest.SkipTest("this build has no --suppressions")
        sup = os.path.join(cls.d, "suppressions.json")
        with open(sup, "w", encoding="utf-8") as f:
            json.dump({"kind": "kvaudit.suppressions", "version": 1, "suppressions": [
                {"rule": "KVA-BKP-001", "resource": "/vaults/kv-nwlog-ops-eus$",
                 "reason": "migrating <soon> & \"quoted\"", "owner": "ops@example.com",
                 "expires": "2099-12-31"}]}, f)
        cls.path = os.path.join(cls.d, "report.json")
        r = kv("audit", os.path.join(SOURCE, "examples", "demo-estate.json"), "--suppressions", sup,
               "--format", "json", "--out", cls.path, "-q")
        if r.rc not in (0, 1):
            raise AssertionError("audit with suppressions failed: %r" % r)
        with open(cls.path, encoding="utf-8") as f:
            cls.report = json.load(f)
        cls.n = sum(1 for f in cls.report["findings"] if f["status"] == "suppressed")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_the_demo_has_one_suppressed_finding(self):
        self.assertEqual(self.n, 1)

    def test_sarif_marks_it_accepted(self):
        res = json.loads(render(self.path, "sarif", self.d))["runs"][0]["results"]
        sup = [r for r in res if "suppressions" in r]
        self.assertEqual(len(sup), self.n)
        self.assertEqual(sup[0]["suppressions"][0]["justification"], "migrating <soon> & \"quoted\"")
        self.assertEqual(sup[0]["suppressions"][0]["properties"]["owner"], "ops@example.com")

    def test_junit_skips_it_with_the_reason(self):
        root = ET.fromstring(render(self.path, "junit", self.d).encode("utf-8"))
        msgs = [c.find("skipped").get("message") for c in root.iter("testcase") if c.find("skipped") is not None]
        self.assertIn("suppressed: migrating <soon> & \"quoted\" (owner ops@example.com) (expires 2099-12-31)",
                      msgs)

    def test_html_shows_the_suppression(self):
        page = parse_html(render(self.path, "html", self.d))
        self.assertEqual(int(page.cards["suppressed"]), self.n)
        self.assertIn("migrating <soon> & \"quoted\" (owner ops@example.com, expires 2099-12-31",
                      "".join(page.text))


HOSTILE = "<script>alert(1)</script> \"q\" 'a' ]]> & |pipe| `tick` \x01\x1b[31m\x7f \u202e\ufffe end"


class Hostile(unittest.TestCase):
    """A report whose text tries to break out of every format."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.d = cls.tmp.name
        src = os.path.join(cls.d, "report.json")
        r = kv("audit", os.path.join(SOURCE, "examples", "demo-estate.json"), "--include-pass",
               "--format", "json", "--out", src, "-q")
        if r.rc not in (0, 1):
            raise AssertionError("audit of the demo failed: %r" % r)
        with open(src, encoding="utf-8") as f:
            rep = json.load(f)
        for f in rep["findings"]:
            for k in ("vmName", "vaultName", "message", "title", "reason"):
                f[k] = HOSTILE + " " + k
            f["evidence"][HOSTILE] = HOSTILE
            f["references"] = ["javascript:alert(1)", "https://x.example/\"><script>alert(2)</script>"]
            if f.get("remediation"):
                f["remediation"]["text"] = HOSTILE
        for v in rep["inventory"]["vaults"]:
            v["name"] = HOSTILE
        rep["scan"]["source"] = HOSTILE
        rep["errors"] = [{"scope": HOSTILE, "status": 403, "code": HOSTILE, "message": HOSTILE}]
        cls.path = os.path.join(cls.d, "hostile.json")
        with open(cls.path, "w", encoding="utf-8") as f:
            json.dump(rep, f)
        cls.report = rep

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_html_has_no_script_from_data(self):
        t = render(self.path, "html", self.d)
        self.assertNotIn("<script", t.lower())
        self.assertNotIn("\x1b", t)
        self.assertNotIn("\x01", t)
        page = parse_html(t)
        self.assertEqual(page.forbidden, [])
        for tag, attr, value in page.links:
            self.assertTrue(value.startswith("#") or value.startswith("https://"), value)
        self.assertNotIn("javascript:", [v[:11] for _, _, v in page.links])

    def test_junit_is_well_formed(self):
        t = render(self.path, "junit", self.d)
        root = ET.fromstring(t.encode("utf-8"))
        self.assertEqual(int(root.get("tests")), len(self.report["findings"]))
        msgs = [c.find("failure").get("message") for c in root.iter("testcase") if c.find("failure") is not None]
        self.assertTrue(msgs)
        self.assertTrue(msgs[0].startswith("<script>alert(1)</script> \"q\" 'a' ]]> & |pipe|"), msgs[0])

    def test_sarif_parses(self):
        t = render(self.path, "sarif", self.d)
        s = json.loads(t)
        self.assertEqual(s["runs"][0]["results"][0]["message"]["text"], HOSTILE + " message")
        self.assertEqual(len(s["runs"][0]["invocations"][0]["toolExecutionNotifications"]), 1)

    def test_markdown_rows_stay_rows(self):
        t = render(self.path, "md", self.d)
        rows = failing_rows(t)
        self.assertTrue(rows)
        for row in rows:
            self.assertEqual(row.replace("\\|", "").count("|"), 6, row)
            self.assertNotIn("<script", row)
            self.assertNotIn("\x1b", row)


class BadInput(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.d = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, text):
        p = os.path.join(self.d, name)
        with open(p, "w", encoding="utf-8") as f:
            f.write(text)
        return p

    def test_missing_file(self):
        one_line_error(self, kv("report", os.path.join(self.d, "nope.json")), "nope.json")

    def test_empty_file(self):
        one_line_error(self, kv("report", self.write("e.json", "")), "e.json", "empty")

    def test_invalid_json(self):
        one_line_error(self, kv("report", self.write("b.json", '{"kind": ')), "b.json", "invalid JSON")

    def test_data_after_the_document(self):
        doc = json.dumps({"kind": "kvaudit.report", "version": 1, "findings": []})
        p = self.write("t.json", doc + " \n\t" + doc)
        one_line_error(self, kv("report", p), "t.json", "after the document at byte %d" % (len(doc) + 3))
        p = self.write("w.json", " \r\n" + doc + " \n\t\r\n")
        self.assertEqual(kv("report", p, "--format", "junit", "--out", "-").rc, 0)

    def test_an_estate_is_not_a_report(self):
        est = os.path.join(SOURCE, "examples", "demo-estate.json")
        one_line_error(self, kv("report", est), "$.kind", "kvaudit.report", "kvaudit.estate")

    def test_wrong_version(self):
        p = self.write("v.json", json.dumps({"kind": "kvaudit.report", "version": 2, "findings": []}))
        one_line_error(self, kv("report", p), "$.version", "2")

    def test_version_not_a_number(self):
        p = self.write("v.json", json.dumps({"kind": "kvaudit.report", "version": "1", "findings": []}))
        one_line_error(self, kv("report", p), "$.version")

    def test_findings_not_an_array(self):
        p = self.write("f.json", json.dumps({"kind": "kvaudit.report", "version": 1, "findings": {}}))
        one_line_error(self, kv("report", p), "$.findings")

    def test_not_an_object(self):
        one_line_error(self, kv("report", self.write("a.json", "[]")), "$")

    def test_unknown_format(self):
        p = self.write("ok.json", json.dumps({"kind": "kvaudit.report", "version": 1, "findings": []}))
        one_line_error(self, kv("report", p, "--format", "pdf"), "pdf")

    def test_no_file(self):
        one_line_error(self, kv("report"), "report file")

    def test_minimal_report_renders(self):
        p = self.write("ok.json", json.dumps({"kind": "kvaudit.report", "version": 1, "findings": []}))
        for fmt in FORMATS:
            r = kv("report", p, "--format", fmt, "--out", "-")
            self.assertEqual(r.rc, 0, (fmt, r))
        r = kv("report", p, "--format", "junit", "--out", "-")
        self.assertEqual(ET.fromstring(r.out.encode()).get("tests"), "0")

    def test_a_report_over_256_mib_renders(self):
        """The old 256 MiB bound refused a 50k-VM report with --include-pass; whitespace makes the size."""
        p = os.path.join(self.d, "big.json")
        with open(p, "w", encoding="utf-8") as f:
            f.write(json.dumps({"kind": "kvaudit.report", "version": 1, "findings": []}))
            pad = " " * (1 << 20)
            for _ in range(257):
                f.write(pad)
        self.assertGreater(os.path.getsize(p), 256 << 20)
        r = kv("report", p, "--format", "junit", "--out", "-")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(ET.fromstring(r.out.encode()).get("tests"), "0")
        os.unlink(p)

    def test_a_report_over_2_gib_is_refused_in_one_line(self):
        p = os.path.join(self.d, "huge.json")
        with open(p, "wb") as f:
            f.truncate((2 << 30) + 1)   # sparse: no disk is used, nothing is read
        one_line_error(self, kv("report", p), "huge.json", "2147483649 bytes", "2 GiB", "--include-pass")
        one_line_error(self, kv("diff", p, p), "huge.json", "2147483649 bytes", "2 GiB")

    def test_help(self):
        r = kv("report", "--help")
        self.assertEqual(r.rc, 0, r)
        for opt in ("--format", "--out"):
            self.assertIn(opt, r.out)
        r = kv("--help")
        self.assertIn("report", r.out)


class SkippedByRule(unittest.TestCase):
    """Skipped findings are counted per rule and reason unless --include-skipped (docs/report.md)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.d = cls.tmp.name
        cls.demo = os.path.join(SOURCE, "examples", "demo-estate.json")
        cls.partial = os.path.join(SOURCE, "examples", "partial-estate.json")
        cls.default_path, cls.all_path = os.path.join(cls.d, "default.json"), os.path.join(cls.d, "all.json")
        for path, extra in ((cls.default_path, []), (cls.all_path, ["--include-skipped"])):
            r = kv("audit", cls.demo, "--include-pass", "--out", path, "-q", *extra)
            if r.rc not in (0, 1):
                raise AssertionError(r)
        cls.default, cls.all = load_json(cls.default_path), load_json(cls.all_path)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    @staticmethod
    def collapsible(f):
        return f["status"] == "skipped" and f["subject"] != "tenant"

    def rows_of(self, findings):
        """skippedByRule as it must be for these listed findings: {(rule, reason): (title, severity, n)}."""
        rows = {}
        for f in findings:
            if self.collapsible(f):
                t, s, n = rows.get((f["rule"], f["reason"]), (f["title"], f["severity"], 0))
                rows[(f["rule"], f["reason"])] = (t, s, n + 1)
        return rows

    def test_default_counts_skipped_findings_per_rule_and_reason(self):
        s = self.default["summary"]
        rows = s["skippedByRule"]
        self.assertEqual([f for f in self.default["findings"] if self.collapsible(f)], [])
        want = self.rows_of(self.all["findings"])
        self.assertGreater(len(want), 0, "the demo has skipped findings")
        self.assertEqual({(r["rule"], r["reason"]): (r["title"], r["severity"], r["count"]) for r in rows}, want)
        for r in rows:
            self.assertEqual(set(r), {"rule", "title", "severity", "reason", "count"})
        self.assertEqual([(r["rule"], r["reason"]) for r in rows], sorted((r["rule"], r["reason"]) for r in rows))
        listed = sum(1 for f in self.default["findings"] if f["status"] == "skipped")
        self.assertEqual(sum(r["count"] for r in rows) + listed, s["byStatus"]["skipped"])
        # the counts are the same either way
        for k in ("byStatus", "bySeverity", "failing", "exitCode", "subjects"):
            self.assertEqual(s[k], self.all["summary"][k], k)

    def test_include_skipped_lists_them_as_before(self):
        self.assertEqual(self.all["summary"]["skippedByRule"], [])
        self.assertEqual(sum(1 for f in self.all["findings"] if f["status"] == "skipped"),
                         self.all["summary"]["byStatus"]["skipped"])
        self.assertEqual([f for f in self.all["findings"] if not self.collapsible(f)], self.default["findings"])

    def test_an_error_finding_is_never_collapsed(self):
        r = kv("audit", self.partial, "--out", "-", "-q")
        self.assertEqual(r.rc, 3, r)
        rep = json.loads(r.out)
        errors = [f for f in rep["findings"] if f["status"] == "error"]
        self.assertGreater(len(errors), 0)
        self.assertEqual(len(errors), rep["summary"]["byStatus"]["error"])
        self.assertTrue(all(f["reason"] and (f["vm"] or f["vault"]) for f in errors))
        self.assertGreater(len(rep["summary"]["skippedByRule"]), 0, "the partial estate has skipped findings")

    def test_html_and_markdown_show_the_table(self):
        rows = self.default["summary"]["skippedByRule"]
        nrules = len({r["rule"] for r in rows})
        page = render(self.default_path, "html", self.d)
        self.assertIn("Not evaluated: %d rules — why, and the flag that collects it" % nrules, page)
        table = page.split('<table id="skipped-by-rule">', 1)[1].split("</table>", 1)[0]
        self.assertEqual(table.count("<tr>") - 1, len(rows))
        for r in rows:
            self.assertIn("<td>%s</td>" % r["rule"], table)
            self.assertIn("<td>%s</td><td>%s</td><td>%d</td>" % (r["severity"], r["title"], r["count"]), table)
        md = render(self.default_path, "md", self.d)
        self.assertIn("### Not evaluated: %d rules — why, and the flag that collects it" % nrules, md)
        tail = md.split("### Not evaluated", 1)[1].split("###", 1)[0]
        self.assertEqual(len([ln for ln in tail.splitlines() if ln.startswith("| KVA-")]), len(rows))
        self.assertIn("| KVA-RST-001 | critical | The BEK secrets of the ADE VM exist in the key vault | 1 |", tail)
        # nothing counted, nothing to show: no section
        r = kv("report", self.all_path, "--format", "md", "--out", "-", "--include-skipped")
        self.assertEqual(r.rc, 0, r)
        self.assertNotIn("Not evaluated", r.out)

    def test_terminal_summary_shows_the_rows(self):
        r = kv("audit", self.demo, "--out", os.path.join(self.d, "t.json"))
        rows = self.default["summary"]["skippedByRule"]
        self.assertIn("not evaluated: %d rules, %d findings" % (len({x["rule"] for x in rows}),
                                                               sum(x["count"] for x in rows)), r.err)
        self.assertIn("--data-plane on 'kvaudit scan'", r.err)

    def test_report_folds_a_listed_report_unless_include_skipped(self):
        r = kv("report", self.all_path, "--format", "json", "--out", "-")
        self.assertEqual(r.rc, 0, r)
        folded = json.loads(r.out)
        self.assertEqual(folded["findings"], self.default["findings"])
        self.assertEqual(folded["summary"]["skippedByRule"], self.default["summary"]["skippedByRule"])
        r = kv("report", self.all_path, "--format", "json", "--out", "-", "--include-skipped")
        self.assertEqual(json.loads(r.out), self.all)
        # a report of before skippedByRule (listed skips, no rows) reads too
        old = copy.deepcopy(self.all)
        del old["summary"]["skippedByRule"]
        p = os.path.join(self.d, "old.json")
        with open(p, "w", encoding="utf-8") as f:
            json.dump(old, f)
        r = kv("report", p, "--format", "json", "--out", "-")
        self.assertEqual(json.loads(r.out)["summary"]["skippedByRule"], self.default["summary"]["skippedByRule"])
        r = kv("diff", p, self.default_path)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("new failing findings (0)", r.out)

    def test_config_key(self):
        cfg = os.path.join(self.d, "cfg.json")
        with open(cfg, "w", encoding="utf-8") as f:
            json.dump({"kind": "kvaudit.config", "version": 1, "includeSkipped": True}, f)
        r = kv("audit", self.demo, "--config", cfg, "--include-pass", "--out", "-", "-q")
        self.assertIn(r.rc, (0, 1), r)
        self.assertEqual(json.loads(r.out)["findings"], self.all["findings"])
        with open(cfg, "w", encoding="utf-8") as f:
            json.dump({"kind": "kvaudit.config", "version": 1, "includeSkipped": "yes"}, f)
        one_line_error(self, kv("audit", self.demo, "--config", cfg, "--out", "-", "-q"), "includeSkipped")

    def test_report_keeps_the_members_in_place_wherever_the_summary_is(self):
        """kvaudit report puts a copy of the summary where it was (first, middle or last member)."""
        r = kv("report", self.all_path, "--format", "json", "--out", "-")
        self.assertEqual(r.rc, 0, r)
        want = json.loads(r.out)
        keys = list(self.all)
        for order in (["summary"] + [k for k in keys if k != "summary"], [k for k in keys if k != "summary"] + ["summary"],
                      ["summary"]):
            doc = {k: self.all[k] for k in order}
            if order == ["summary"]:
                doc = {"kind": "kvaudit.report", "version": 1, "findings": self.all["findings"],
                       "summary": self.all["summary"]}
            p = os.path.join(self.d, "order.json")
            with open(p, "w", encoding="utf-8") as f:
                json.dump(doc, f)
            r = kv("report", p, "--format", "json", "--out", "-")
            self.assertEqual(r.rc, 0, r)
            got = json.loads(r.out)
            self.assertEqual(list(got), list(doc), order)
            self.assertEqual(got["summary"], want["summary"])
            self.assertEqual(got["findings"], want["findings"])

    def test_merge_adds_the_rows_up(self):
        with open(self.demo, encoding="utf-8") as f:
            est = json.load(f)
        sub = lambda v: v["id"].split("/")[2].lower()
        first = sorted({sub(v) for v in est["virtualMachines"]})[0]
        paths = []
        for i, keep in enumerate((lambda v: sub(v) == first, lambda v: sub(v) != first)):
            part = dict(est, virtualMachines=[v for v in est["virtualMachines"] if keep(v)])
            part.pop("backupJobs")     # both halves skip the job rules: rows of the same rule and reason
            e, out = os.path.join(self.d, "e%d.json" % i), os.path.join(self.d, "r%d.json" % i)
            with open(e, "w", encoding="utf-8") as f:
                json.dump(part, f)
            r = kv("audit", e, "--out", out, "-q")
            self.assertIn(r.rc, (0, 1, 3), r)
            paths.append(out)
        merged = os.path.join(self.d, "merged.json")
        r = kv("merge", *paths, "--out", merged, "-q")
        self.assertIn(r.rc, (0, 1, 3), r)
        want = {}
        for p in paths:
            for row in load_json(p)["summary"]["skippedByRule"]:
                want[(row["rule"], row["reason"])] = want.get((row["rule"], row["reason"]), 0) + row["count"]
        self.assertTrue(any(v > 1 and all(k in {(x["rule"], x["reason"]) for x in load_json(p)["summary"]
                                                ["skippedByRule"]} for p in paths) for k, v in want.items()),
                        "a row in both inputs")
        m = load_json(merged)
        rows = m["summary"]["skippedByRule"]
        self.assertEqual({(x["rule"], x["reason"]): x["count"] for x in rows}, want)
        self.assertEqual([(x["rule"], x["reason"]) for x in rows], sorted(want))
        listed = sum(1 for f in m["findings"] if f["status"] == "skipped")
        self.assertEqual(sum(want.values()) + listed, m["summary"]["byStatus"]["skipped"])


class Streamed(unittest.TestCase):
    """SARIF results and the inventory's VMs and vaults are printed one at a time into the document's
    skeleton: the edges (no result, one, empty lists) must still be the JSON cJSON would print."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.d = self.tmp.name
        self.demo = os.path.join(SOURCE, "examples", "demo-estate.json")

    def tearDown(self):
        self.tmp.cleanup()

    def test_sarif_with_no_one_and_many_results(self):
        full = os.path.join(self.d, "full.json")
        r = kv("audit", self.demo, "--include-pass", "--out", full, "-q")
        self.assertIn(r.rc, (0, 1, 3), r)
        rep = load_json(full)
        results = [f for f in rep["findings"] if f["status"] in ("fail", "error", "suppressed")]
        self.assertGreater(len(results), 1)
        for keep in ([], results[:1], results):
            doc = dict(rep, findings=[f for f in rep["findings"] if f["status"] == "pass"] + keep)
            p = os.path.join(self.d, "r.json")
            with open(p, "w", encoding="utf-8") as f:
                json.dump(doc, f)
            r = kv("report", p, "--format", "sarif", "--out", "-")
            self.assertEqual(r.rc, 0, r)
            self.assertTrue(r.out.endswith("}\n"), r.out[-40:])
            run = json.loads(r.out)["runs"][0]
            self.assertEqual([x["ruleId"] for x in run["results"]], [f["rule"] for f in keep])
            self.assertEqual(list(run), ["tool", "invocations", "results", "columnKind"])
            # printed in place, at cJSON's depth: a result's members are five tabs in
            if keep:
                self.assertIn('\t\t\t"results":\t[{\n\t\t\t\t\t"ruleId":', r.out)

    def test_inventory_json_with_and_without_vms(self):
        r = kv("inventory", self.demo, "--format", "json")
        self.assertEqual(r.rc, 0, r)
        inv = json.loads(r.out)
        self.assertGreater(len(inv["vms"]), 1)
        self.assertIn('\t"vms":\t[{\n\t\t\t"', r.out)
        est = load_json(self.demo)
        est["virtualMachines"], est["vaults"], est["disks"] = [], [], []
        p = os.path.join(self.d, "empty.json")
        with open(p, "w", encoding="utf-8") as f:
            json.dump(est, f)
        r = kv("inventory", p, "--format", "json")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(json.loads(r.out), {"vms": [], "vaults": []})
        self.assertEqual(r.out, '{\n\t"vms":\t[],\n\t"vaults":\t[]\n}\n')


class CommandLine(unittest.TestCase):
    """A config file's errors name the file and where its name came from; every option is checked
    whatever the mode (an option a mode does not use is still rejected when it is bad)."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.d = self.tmp.name
        self.demo = os.path.join(SOURCE, "examples", "demo-estate.json")
        self.journal = os.path.join(self.d, "j.journal")
        with open(self.journal, "w", encoding="utf-8") as f:
            f.write("")

    def tearDown(self):
        self.tmp.cleanup()

    def commands(self):
        """Every command that reads a config file, as it would run without one."""
        return [["audit", self.demo, "--out", "-"], ["scan"], ["collect"], ["fix", "--estate", self.demo],
                ["rollback", self.journal, "--yes"]]

    def test_a_missing_config_file_is_named_as_the_config_file(self):
        missing = os.path.join(self.d, "none.json")
        for cmd in self.commands():
            one_line_error(self, kv(*cmd, "--config", missing),
                           "config file '%s' (named by --config): cannot open: No such file or directory" % missing)
            env = dict(os.environ, KVAUDIT_CONFIG=missing)
            one_line_error(self, kv(*cmd, env=env),
                           "config file '%s' (named by $KVAUDIT_CONFIG): cannot open" % missing)
            # --help works whatever the file holds
            self.assertEqual(kv(cmd[0], "--help", env=env).rc, 0, cmd)
        one_line_error(self, kv("config", "check", self.d), "config file '%s': a directory, not a file" % self.d)

    def test_a_bad_config_file_is_one_line_naming_the_file_and_the_key(self):
        cfg = os.path.join(self.d, "c.json")
        bad = [('{"kind": "kvaudit.config",', "invalid JSON at byte"),
               ('{"kind": "kvaudit.config", "enginee": "arm"}', "$.enginee: unknown setting"),
               ('{"kind": "kvaudit.config", "auth": "password"}', "$.auth: expected auto, env, msi or cli"),
               ('{"kind": "kvaudit.config", "version": 2}', "$.version: expected 1"),
               ('{"kind": "kvaudit.estate"}', "$.kind: expected \"kvaudit.config\""),
               # the cloud is read as --cloud's is, and named with the file it came from
               ('{"kind": "kvaudit.config", "cloud": "Nope"}', "$.cloud: unknown cloud \"Nope\": expected AzureCloud"),
               ('{"kind": "kvaudit.config", "cloud": "none.json"}', "$.cloud: ", "none.json")]
        for text, *words in bad:
            with open(cfg, "w", encoding="utf-8") as f:
                f.write(text)
            for cmd in self.commands():
                one_line_error(self, kv(*cmd, "--config", cfg), "config file '%s' (named by --config): " % cfg, *words)
            one_line_error(self, kv("config", "check", cfg), "config file '%s': " % cfg, *words)

    def test_every_option_is_checked_whatever_the_mode(self):
        fix = ["fix", "--estate", self.demo]
        bad = [(fix + ["--engine", "bogus"], "--engine takes graph or arm"),
               (fix + ["--concurrency", "0"], "--concurrency takes a number from 1 to 256"),
               (fix + ["--concurrency", "many"], "--concurrency takes a number from 1 to 256"),
               (fix + ["--subscription", "not-a-guid"], "--subscription 'not-a-guid' is not a subscription ID"),
               (fix + ["--auth", "password"], "--auth takes auto, env, msi or cli"),
               (fix + ["--cloud", os.path.join(self.d, "none.json")], "none.json"),
               (fix + ["--rbac-role", "admin"], "--rbac-role takes a role definition GUID"),
               (["rollback", self.journal, "--yes", "--auth", "password"], "--auth takes auto, env, msi or cli"),
               (["rollback", self.journal, "--yes", "--cloud", "NoSuchCloud"],
                "unknown cloud \"NoSuchCloud\": expected AzureCloud, AzureUSGovernment, AzureChinaCloud or "
                "the path of a cloud JSON file"),
               (fix + ["--cloud", "Nope"], "unknown cloud \"Nope\": expected AzureCloud"),
               (["rules", "check", self.d, "--rules", self.d], "--rules applies to 'rules list' and 'rules show'"),
               (["rules", "facts", "--rules", self.d], "--rules applies to 'rules list' and 'rules show'")]
        for args, words in bad:
            one_line_error(self, kv(*args), words)
        # valid, but not used in this mode: accepted (a plan from a snapshot reads nothing live)
        r = kv(*fix, "--engine", "arm", "--concurrency", "8", "--auth", "env", "--cloud", "AzureUSGovernment",
               "--subscription", "6a0f9e2c-4b75-4e13-8d29-c5b1f7a3e6d8")
        self.assertEqual(r.rc, 0, r)
        # an empty journal records nothing to undo: rollback's connection options are still checked first
        r = kv("rollback", self.journal, "--yes", "--auth", "env", "--cloud", "AzureCloud")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("nothing to roll back", r.out)


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


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
        print("test_formats: %s is not an executable" % KVAUDIT, file=sys.stderr)
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
