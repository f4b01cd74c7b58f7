#!/usr/bin/env python3
"""Security: secrets never leave kvaudit's memory except towards the cloud's own endpoints.

Run by ctest as: test_security.py --kvaudit BIN --source REPO
What test_live.py and test_fix.py already prove is not repeated here (no "eyJ" in the default
outputs of scan/whoami/fix, the journal and snapshot 0600, the untrusted-CA refusal, a foreign ARM
nextLink on another host name, a foreign key URL host that does not resolve).  This suite adds:
- every token the emulator issued (GET /_emulator/issued-tokens), its signature alone and the
  client secret are absent from stdout, stderr and every file kvaudit wrote, at every verbosity
  (-v: one line per HTTP request; --log-format json), for collect, scan, whoami, fix --apply,
  rollback and their failures;
- a second listener on 127.0.0.1 (reachable, unlike a made-up host name) that must see nothing
  when a key URL, an ARM nextLink or a Microsoft Graph @odata.nextLink points at it;
- TLS: a certificate for another name is fatal (exit 5, nothing sent), and no option or
  documented setting disables verification;
- secrets are refused on the command line and the refused value is not echoed;
- the files that name identities or hold the journal are 0600.
Prints 'N passed, N failed'.
"""
import glob
import http.server
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import unittest

from emulator_helper import ARGS, Emulator, kvaudit, main

SUB_PROD = "8b2e4f71-3c9a-4d6e-b1f0-7a5c2e9d4b13"
COMMANDS = ["audit", "inventory", "rules", "collect", "scan", "whoami", "report", "diff", "config", "fix",
            "rollback"]


def load(path):
    with open(path) as f:
        return json.load(f)


class Trap:
    """An HTTPS listener with the emulator's certificate: every request it sees is a leak."""

    def __init__(self, emu):
        self.seen = []
        seen = self.seen

        class H(http.server.BaseHTTPRequestHandler):
            def handle_one(self):
                seen.append((self.command, self.path, self.headers.get("Authorization")))
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = do_DELETE = handle_one

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(emu.dir, "server.pem"), os.path.join(emu.dir, "server.key"))
        self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        self.port = self.srv.server_port
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


class NoSecretAnywhere(unittest.TestCase):
    """Every command at every verbosity, successes and failures, then one grep over everything."""

    @classmethod
    def setUpClass(cls):
        cls.emu = emu = Emulator()
        cls.outputs = []
        d = emu.dir
        os.makedirs(os.path.join(d, "reports"))

        def run(args, auth="secret", **kw):
            r = kvaudit(emu, args, auth=auth, timeout=180, **kw)
            cls.outputs.append((" ".join(args), r.stdout + r.stderr))
            return r

        cls.rc = {}
        for auth in ("secret", "certificate", "cli"):
            cls.rc["whoami-" + auth] = run(["whoami", "-v"], auth=auth).returncode
        cls.rc["collect"] = run(["collect", "-v", "--out", "estate.json"]).returncode
        cls.rc["scan"] = run(["scan", "-v", "--data-plane", "--format", "json,csv,html,sarif,junit,md", "--out",
                              "reports", "--save-estate", "scan-estate.json"]).returncode
        cls.rc["scan-json-log"] = run(["scan", "-v", "--log-format", "json", "--out", "scan-json.json"],
                                      auth="cli").returncode
        # Failures: a 401 on every ARM list, a Key Vault 403 body, a token endpoint error.
        emu.fault({"match": {"pathRegex": "Microsoft.Compute/disks$"}, "status": 401, "times": 0})
        emu.fault({"match": {"host": r"\.vault\."}, "status": 403, "times": 0})
        cls.rc["scan-failing"] = run(["scan", "-v", "--data-plane", "--out", "failing.json"]).returncode
        emu.call("DELETE", "/_emulator/faults")
        cls.rc["fix"] = run(["fix", "-v", "--apply", "--yes", "--journal", "fix.journal", "--out",
                             "fix-run.json"]).returncode
        cls.rc["rollback"] = run(["rollback", "-v", "fix.journal", "--yes", "--out", "rollback.json"]).returncode
        emu.fault({"match": {"method": "PUT"}, "status": 500, "times": 0})
        cls.rc["fix-failing"] = run(["fix", "-v", "--apply", "--yes", "--journal", "fix2.journal", "--out",
                                     "fix2-run.json"]).returncode
        emu.call("DELETE", "/_emulator/faults")
        emu.fault({"match": {"pathRegex": "^/login/"}, "status": 500, "times": 0})
        cls.rc["whoami-login-failing"] = run(["whoami", "-v"]).returncode
        emu.call("DELETE", "/_emulator/faults")
        cls.tokens = emu.call("GET", "/_emulator/issued-tokens")
        apps = emu.info["apps"] if isinstance(emu.info["apps"], list) else list(emu.info["apps"].values())
        cls.secrets = [a["secret"] for a in apps if a.get("secret")]
        cls.files = [p for p in glob.glob(os.path.join(d, "**", "*"), recursive=True)
                     if os.path.isfile(p) and os.path.relpath(p, d) not in
                     ("emulator.json", "env.sh", "emulator.log", "server.key", "overlay.json")
                     and not os.path.relpath(p, d).startswith(("apps", "bin"))]

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def test_the_commands_ran_as_documented(self):
        rc = dict(self.rc)
        self.assertIn(rc.pop("scan"), (1, 3))    # the app may not read every key bundle
        self.assertEqual(rc, {"whoami-secret": 0, "whoami-certificate": 0, "whoami-cli": 0, "collect": 0,
                              "scan-json-log": 1, "scan-failing": 3, "fix": 0, "rollback": 0,
                              "fix-failing": 4, "whoami-login-failing": 5})

    def test_tokens_were_issued_and_verbose_output_was_written(self):
        self.assertGreater(len(self.tokens), 10)
        self.assertTrue(all(t.count(".") == 2 for t in self.tokens))
        scan = next(o for a, o in self.outputs if a.startswith("scan -v --data-plane --format"))
        self.assertGreater(len(scan.splitlines()), 50)       # one line per HTTP request

    def test_no_token_signature_or_secret_in_any_output_or_file(self):
        needles = set(self.secrets)
        for t in self.tokens:
            needles.add(t)
            needles.add(t.split(".")[2])                      # the signature alone
        haystacks = list(self.outputs)
        for p in self.files:
            with open(p, "rb") as f:
                haystacks.append((p, f.read().decode("utf-8", "replace")))
        self.assertGreater(len(haystacks), 20)
        for name, text in haystacks:
            self.assertNotIn("eyJ", text, name)
            for n in needles:
                self.assertNotIn(n, text, name)

    def test_identity_and_journal_files_are_private(self):
        for name in ("estate.json", "scan-estate.json", "fix.journal", "fix2.journal", "fix-run.json",
                     "fix2-run.json", "rollback.json", "scan-json.json", "failing.json"):
            p = os.path.join(self.emu.dir, name)
            self.assertEqual(os.stat(p).st_mode & 0o777, 0o600, name)


class ForeignListener(unittest.TestCase):
    """Links that point at a reachable listener outside the cloud's endpoints are never followed."""

    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator()

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def setUp(self):
        self.emu.clear()
        self.trap = Trap(self.emu)

    def tearDown(self):
        self.trap.close()
        self.emu.call("POST", "/_emulator/config", {"nextLinkBase": None})

    def scan(self, name, emu=None):
        emu = emu or self.emu
        return kvaudit(emu, ["scan", "-v", "--data-plane", "--out", name + ".json", "--save-estate",
                             name + ".estate.json"], timeout=180)

    def test_arm_next_link_to_another_port_of_the_same_address(self):
        # Same IP as the cloud, same /arm path: only the port differs, and that is another origin.
        self.emu.call("POST", "/_emulator/config", {"nextLinkBase": "https://127.0.0.1:%d" % self.trap.port})
        r = self.scan("arm")
        self.assertEqual(r.returncode, 3, r.stderr[-2000:])
        self.assertEqual(self.trap.seen, [])
        self.assertTrue(any(e["code"] == "ForeignHost" for e in load(os.path.join(self.emu.dir, "arm.json"))["errors"]))

    def test_graph_next_link(self):
        # kvaudit reads no Microsoft Graph list: it asks Graph for single objects (the caller's /me,
        # Backup Management Service by appId, Activity Log callers by object ID), so it never pages
        # with @odata.nextLink.  Answer the Backup Management Service read with a collection page
        # whose @odata.nextLink points at the trap (what a client paging a $filter list would follow):
        # kvaudit must not follow it, must record that read as failed (the object was not returned),
        # and the scan is incomplete: exit 3, Backup's permission rules `error`, never `pass`.
        link = "https://127.0.0.1:%d/graph/v1.0/servicePrincipals?$skiptoken=trap" % self.trap.port
        body = {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#servicePrincipals",
                "value": [{"id": "00000000-0000-4000-8000-0000000000aa", "appId": "262044b1-e2ce-469f-a196-69ab7ada62d3",
                           "displayName": "Backup Management Service"}], "@odata.nextLink": link}
        self.emu.fault({"match": {"pathRegex": "^/graph/v1.0/servicePrincipals"}, "status": 200, "body": body,
                        "times": 0})
        r = self.scan("graph")
        self.assertEqual(r.returncode, 3, r.stderr[-2000:])
        self.assertEqual(self.trap.seen, [])
        # Nothing followed the link, not even to the emulator itself.
        self.assertFalse([x for x in self.emu.requests() if "trap" in x["query"]])
        graph = [x for x in self.emu.requests() if x["surface"] == "graph"]
        self.assertTrue(graph and all("servicePrincipals(appId=" in x["path"] or "/users/" in x["path"] or
                                      x["path"].endswith("/me") for x in graph), [x["path"] for x in graph])
        rep = load(os.path.join(self.emu.dir, "graph.json"))
        errs = [e for e in rep["errors"] if "servicePrincipals" in e["scope"]]
        self.assertTrue(errs and all(e["code"] == "MalformedResponse" for e in errs), rep["errors"])
        bkp = [f for f in rep["findings"] if f["rule"] in ("KVA-BKP-001", "KVA-BKP-002", "KVA-BKP-004")]
        self.assertTrue(bkp and all(f["status"] == "error" for f in bkp), [(f["rule"], f["status"]) for f in bkp])

    def test_key_vault_list_next_link(self):
        # The lists kvaudit does page outside ARM are Key Vault's (--data-plane: a BEK secret's
        # versions, deleted secrets), paged with nextLink and read with a Key Vault token.  A nextLink
        # to a reachable listener on another host is refused: the trap sees nothing, the snapshot
        # names the refused host in a ForeignHost error, the BEK's restore rules are `error`, exit 3.
        link = "https://127.0.0.1:%d/secrets/x/versions?api-version=7.4&$skiptoken=trap" % self.trap.port
        self.emu.fault({"match": {"host": r"\.vault\.", "pathRegex": "^/secrets/[^/]+/versions$"}, "status": 200,
                        "body": {"value": [], "nextLink": link}, "times": 0})
        r = self.scan("kvlist")
        self.assertEqual(r.returncode, 3, r.stderr[-2000:])
        self.assertEqual(self.trap.seen, [])
        self.assertFalse([x for x in self.emu.requests() if "trap" in x["query"]])
        errs = [e for e in load(os.path.join(self.emu.dir, "kvlist.estate.json"))["errors"] if e["code"] == "ForeignHost"]
        self.assertTrue(errs, load(os.path.join(self.emu.dir, "kvlist.estate.json"))["errors"])
        self.assertTrue(all("127.0.0.1:%d" % self.trap.port in e["message"] and "not followed" in e["message"]
                            for e in errs), errs)
        rep = load(os.path.join(self.emu.dir, "kvlist.json"))
        rst = [f for f in rep["findings"] if f["rule"] in ("KVA-RST-001", "KVA-RST-002", "KVA-RST-003", "KVA-RST-004")]
        self.assertTrue(rst and all(f["status"] in ("error", "skipped") for f in rst),
                        [(f["rule"], f["status"]) for f in rst])
        self.assertTrue(any(f["status"] == "error" for f in rst))

    def test_key_url_on_a_reachable_foreign_host(self):
        demo = load(os.path.join(ARGS["source"], "examples/demo-estate.json"))
        urls = ["https://127.0.0.1:%d/keys/k/0123456789abcdef" % self.trap.port,
                "https://localhost:%d/keys/k/0123456789abcdef" % self.trap.port,
                "https://kv-nw-prod-weu.vault.azure.net@127.0.0.1:%d/keys/k/1" % self.trap.port]
        n = 0
        for d in demo["disks"]:
            for es in (d.get("properties", {}).get("encryptionSettingsCollection") or {}).get("encryptionSettings", []):
                if es.get("keyEncryptionKey") and n < len(urls):
                    es["keyEncryptionKey"]["keyUrl"] = urls[n]
                    n += 1
        self.assertEqual(n, len(urls))
        emu = Emulator(overlay={"disks": demo["disks"]})
        try:
            r = self.scan("kv", emu)
            self.assertEqual(r.returncode, 3, r.stderr[-2000:])
            errs = [e for e in load(os.path.join(emu.dir, "kv.estate.json"))["errors"]
                    if str(self.trap.port) in e["scope"]]
            self.assertEqual(len(errs), len(urls), errs)
        finally:
            emu.stop()
        self.assertEqual(self.trap.seen, [])


class Tls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator()

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def test_a_certificate_for_another_name_is_fatal_and_nothing_is_sent(self):
        # other-name.example reaches the emulator (KVAUDIT_RESOLVE), but its certificate does not
        # name it: the CA is trusted, the name is wrong.
        cloud = load(self.emu.cloud)
        text = json.dumps(cloud).replace("127.0.0.1", "other-name.example")
        path = os.path.join(self.emu.dir, "other-name.json")
        with open(path, "w") as f:
            f.write(text)
        self.emu.clear()
        r = kvaudit(self.emu, ["scan", "-v", "--out", "x.json"], cloud=path,
                    extra_env={"KVAUDIT_RESOLVE": "other-name.example:%d:127.0.0.1" % self.emu.port})
        self.assertEqual(r.returncode, 5, r.stderr)
        self.assertRegex(r.stderr.lower(), "certificate|tls|ssl")
        self.assertEqual(self.emu.requests(), [])
        self.assertNotIn("eyJ", r.stdout + r.stderr)

    def test_no_option_disables_verification(self):
        bad = re.compile(r"insecure|no-?verify|skip-?verify|verify-?peer|ssl-?no|tls-?no|--?k\b", re.I)
        for c in COMMANDS:
            r = subprocess.run([ARGS["kvaudit"], c, "--help"], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, c)
            self.assertIsNone(bad.search(r.stdout), c)
        man = open(os.path.join(ARGS["source"], "docs/kvaudit.1")).read()
        self.assertIsNone(re.search(r"insecure|no-?verify|skip-?verify", man, re.I))
        for opt in ("--insecure", "-k", "--no-verify", "--no-verify-ssl", "--skip-tls-verify"):
            r = kvaudit(self.emu, ["whoami", opt])
            self.assertEqual(r.returncode, 2, opt)
        # The cloud file cannot switch it off either: unknown members change nothing.
        cloud = load(self.emu.cloud)
        cloud.pop("caBundle")
        cloud.update({"verify": False, "insecure": True, "sslVerify": False, "tlsVerify": False})
        path = os.path.join(self.emu.dir, "no-verify.json")
        with open(path, "w") as f:
            json.dump(cloud, f)
        self.emu.clear()
        r = kvaudit(self.emu, ["whoami"], cloud=path, extra_env={"CURL_CA_BUNDLE": "", "PYTHONHTTPSVERIFY": "0",
                                                                  "GIT_SSL_NO_VERIFY": "1"})
        self.assertIn(r.returncode, (2, 5), r.stderr)
        self.assertEqual([x for x in self.emu.requests() if x["surface"] == "login"], [])


class SecretsOnTheCommandLine(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator()

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def test_refused_and_never_echoed(self):
        secret = "S3kr1t-On-The-Command-Line"
        for cmd in ("whoami", "scan", "collect", "fix", "rollback"):
            for form in (["--client-secret=" + secret], ["--client-secret", secret], ["--password=" + secret],
                         ["--token=" + secret], ["--secret=" + secret], ["--client-certificate-password=" + secret]):
                r = kvaudit(self.emu, [cmd] + form)
                self.assertEqual(r.returncode, 2, (cmd, form, r.stderr))
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
                self.assertNotIn(secret, r.stdout + r.stderr, (cmd, form))
        self.assertEqual([x for x in self.emu.requests() if x["surface"] == "login"], [])


if __name__ == "__main__":
    sys.exit(main(__name__))
