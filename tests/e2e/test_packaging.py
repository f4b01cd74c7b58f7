#!/usr/bin/env python3
"""Packaging checks (issue 6): the man page, --help and the bash completion agree; the .deb
built by CPack holds the binary, the man page, the completion and the rule catalog, and the
binary unpacked from it runs.

  test_packaging.py --kvaudit BUILD/kvaudit --source SRC [--skip-deb]

1. For the top level and for every command, the set of long options (--[a-z-]+ tokens) that
   `kvaudit [COMMAND] --help` prints equals the set in docs/kvaudit.1's matching section
   (.SH OPTIONS for the top level, without the lines of its command list; .SS COMMAND under
   .SH COMMANDS).
2. contrib/kvaudit.bash-completion, run in bash, completes every command and, for every
   command, every long option its --help prints.
3. examples/deploy/ parses (YAML when PyYAML is installed, the wrapper with sh -n) and has
   what its README promises.
4. examples/deploy/kvaudit-nightly.sh runs against the Azure emulator (tests/emulator/): the
   first scan exits 1 and becomes the baseline, an unchanged second scan exits 0.
5. A temporary build (-DKVAUDIT_TESTS=OFF) is packaged with `cpack -G DEB`; the .deb's control
   fields are checked, it is unpacked with `dpkg-deb -x` into a temporary root (no root
   needed), and <root>/usr/bin/kvaudit --version and rules list are run.

Stdlib only.  Prints one line per check and `N passed, N failed` last.
"""
import argparse
import glob
import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile

COMMANDS = ["audit", "inventory", "rules", "collect", "scan", "whoami", "report", "diff", "merge", "config",
            "fix", "rollback"]
OPT_RE = re.compile(r"(?<![\w-])--[a-z][a-z-]*[a-z]")

passed = 0
failed = 0


def check(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {what}")
    else:
        failed += 1
        print(f"FAIL {what}" + (f": {detail}" if detail else ""))
    sys.stdout.flush()


def run(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def help_text(kvaudit, cmd):
    argv = [kvaudit] + ([cmd] if cmd else []) + ["--help"]
    p = run(argv, timeout=30)
    return p.returncode, p.stdout + p.stderr


def options(text):
    return set(OPT_RE.findall(text))


def man_sections(path):
    """{"": top-level OPTIONS text, "audit": text of .SS audit, ...} with roff escapes undone."""
    sections = {}
    sh = ss = None
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if line.startswith('.\\"'):
                continue
            m = re.match(r'^\.SH\s+"?([^"]*)"?', line)
            if m:
                sh, ss = m.group(1).strip().upper(), None
                continue
            m = re.match(r'^\.SS\s+"?([^"]*)"?', line)
            if m:
                ss = m.group(1).strip().split()[-1]
                continue
            text = line.replace("\\-", "-").replace("\\e", "\\")
            text = re.sub(r"\\f(\[[^]]*\]|\(..|.)", "", text)
            if sh == "OPTIONS":
                key = ""
            elif sh == "COMMANDS" and ss:
                key = ss
            else:
                continue
            sections.setdefault(key, []).append(text)
    return {k: "\n".join(v) for k, v in sections.items()}


def check_man(kvaudit, source):
    man = os.path.join(source, "docs", "kvaudit.1")
    sections = man_sections(man)
    for cmd in [""] + COMMANDS:
        name = cmd or "kvaudit --help (top level)"
        rc, text = help_text(kvaudit, cmd)
        if rc != 0:
            check(False, f"man: {name}", f"--help exited {rc}")
            continue
        if cmd and cmd not in sections:
            check(False, f"man: {name}", "docs/kvaudit.1 has no '.SS " + cmd + "' under COMMANDS")
            continue
        if not cmd:
            # The top level's command list describes commands (checked in their own sections).
            text = "\n".join(l for l in text.splitlines() if not re.match(r"^  [a-z]+\s{2,}", l))
        h, m = options(text), options(sections.get(cmd, ""))
        detail = []
        if h - m:
            detail.append("in --help but not in the man page: " + " ".join(sorted(h - m)))
        if m - h:
            detail.append("in the man page but not in --help: " + " ".join(sorted(m - h)))
        check(not detail, f"man page section for {name} has the --help options ({len(h)})",
              "; ".join(detail))
    # Every command listed by the top-level help has a man page section.
    _, top = help_text(kvaudit, "")
    listed = re.findall(r"^  ([a-z]+)\s{2,}", top, re.M)
    check(sorted(listed) == sorted(COMMANDS),
          "the top-level --help lists exactly the commands the man page documents",
          f"--help lists {listed}")
    # groff renders the page without warnings.
    if shutil.which("groff"):
        p = run(["groff", "-man", "-Tutf8", "-ww", "-z", man], timeout=60)
        check(p.returncode == 0 and not p.stderr.strip(), "groff renders docs/kvaudit.1 without "
              "warnings", p.stderr.strip()[:500])


def complete(script, words):
    """COMPREPLY of the completion for the command line `words` (the last one is completed)."""
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    prog = (f"source '{script}'; COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; "
            "COMP_LINE=\"${COMP_WORDS[*]}\"; COMP_POINT=${#COMP_LINE}; _kvaudit; "
            "printf '%s\\n' \"${COMPREPLY[@]}\"")
    p = run(["bash", "--norc", "--noprofile", "-c", prog], timeout=30)
    return p.returncode, set(p.stdout.split())


def check_completion(kvaudit, source):
    script = os.path.join(source, "contrib", "kvaudit.bash-completion")
    if not shutil.which("bash"):
        check(False, "bash completion", "bash is not installed")
        return
    rc, got = complete(script, ["kvaudit", ""])
    check(rc == 0 and got == set(COMMANDS), "completion: the commands",
          f"rc {rc}, got {sorted(got)}")
    rc, got = complete(script, ["kvaudit", "--"])
    _, top = help_text(kvaudit, "")
    want = options("\n".join(l for l in top.splitlines() if not re.match(r"^  [a-z]+\s{2,}", l)))
    check(want <= got, "completion: the top-level options", f"want {sorted(want)}, got {sorted(got)}")
    for cmd in COMMANDS:
        _, text = help_text(kvaudit, cmd)
        want = options(text)
        if cmd == "config":
            rc, subs = complete(script, ["kvaudit", "config", ""])
            check(subs == {"check"}, "completion: config subcommands", f"got {sorted(subs)}")
            continue
        if cmd == "rules":
            rc, got = complete(script, ["kvaudit", "rules", "list", "--"])
            rc2, subs = complete(script, ["kvaudit", "rules", ""])
            check(subs == {"list", "show", "check", "facts"}, "completion: rules subcommands",
                  f"got {sorted(subs)}")
        else:
            rc, got = complete(script, ["kvaudit", cmd, "--"])
        check(rc == 0 and want <= got, f"completion: {cmd} completes its --help options",
              "missing " + " ".join(sorted(want - got)))
    rc, got = complete(script, ["kvaudit", "audit", "--format", "json,s"])
    check(got == {"json,sarif"}, "completion: --format completes a comma-separated list",
          f"got {sorted(got)}")
    rc, got = complete(script, ["kvaudit", "scan", "--fail-on", "h"])
    check(got == {"high"}, "completion: --fail-on completes severities", f"got {sorted(got)}")


def check_examples(source):
    """examples/deploy/: the YAML parses (when PyYAML is installed), the wrapper is valid sh, and
    the properties the README promises are in the files."""
    d = os.path.join(source, "examples", "deploy")

    def text(rel):
        with open(os.path.join(d, rel), encoding="utf-8") as f:
            return f.read()

    try:
        import yaml  # not stdlib: optional
    except ImportError:
        yaml = None
        print("skip examples/deploy YAML parsing: PyYAML is not installed")
    if yaml is not None:
        for rel in ("kubernetes/cronjob.yaml", "github/kvaudit.yml"):
            try:
                docs = [x for x in yaml.safe_load_all(text(rel)) if x is not None]
                check(bool(docs), f"examples/deploy/{rel} parses as YAML")
            except yaml.YAMLError as e:
                check(False, f"examples/deploy/{rel} parses as YAML", str(e)[:300])
    p = run(["sh", "-n", os.path.join(d, "kvaudit-nightly.sh")])
    check(p.returncode == 0, "examples/deploy/kvaudit-nightly.sh is valid sh", p.stderr)
    wants = {
        "systemd/kvaudit-scan.service": ["DynamicUser=yes", "ProtectSystem=strict",
                                         "StateDirectory=kvaudit", "EnvironmentFile="],
        "systemd/kvaudit-scan.timer": ["OnCalendar=", "Persistent=true"],
        "cron/kvaudit": ["kvaudit-nightly"],
        "kubernetes/cronjob.yaml": ["azure.workload.identity/client-id",
                                    'azure.workload.identity/use: "true"',
                                    "AZURE_FEDERATED_TOKEN_FILE", "runAsNonRoot: true"],
        "github/kvaudit.yml": ["id-token: write", "ACTIONS_ID_TOKEN_REQUEST_URL",
                               "AZURE_FEDERATED_TOKEN_FILE", "github/codeql-action/upload-sarif",
                               "kvaudit diff"],
        "Dockerfile": ["FROM debian:12-slim AS build", "scripts/deps.sh", "USER 10001"],
    }
    for rel, needles in wants.items():
        t = text(rel)
        missing = [n for n in needles if n not in t]
        check(not missing, f"examples/deploy/{rel} has {', '.join(needles)}",
              f"missing {missing}")
    readme = text("README.md")
    check(all(x in readme for x in ("Reader", "Application.Read.All", "accessPolicies/write",
                                    "roleAssignments/write")),
          "examples/deploy/README.md names the least-privilege identity")


def check_nightly(kvaudit, source):
    """examples/deploy/kvaudit-nightly.sh against the Azure emulator: it refuses a credentials
    file others can read, exits 1 on the first run (no baseline), keeps that report as the
    baseline, and exits 0 on an unchanged second run."""
    import json
    import ssl
    import time
    import urllib.request
    work = tempfile.mkdtemp(prefix="kvaudit-nightly-")
    emu = os.path.join(work, "emu")
    os.mkdir(emu)
    log = open(os.path.join(work, "emulator.log"), "w")
    proc = subprocess.Popen([sys.executable, os.path.join(source, "tests/emulator/emulator.py"),
                             "--scenario", os.path.join(source, "tests/emulator/scenarios/demo.json"),
                             "--workdir", emu, "--max-seconds", "300"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while not os.path.exists(os.path.join(emu, "ready")):
            if proc.poll() is not None or time.time() > deadline:
                check(False, "kvaudit-nightly: the emulator starts", open(log.name).read()[-1000:])
                return
            time.sleep(0.05)
        info = json.load(open(os.path.join(emu, "emulator.json")))
        app = info["apps"][0]
        creds = os.path.join(work, "kvaudit.env")
        with open(creds, "w") as f:
            f.write(f"AZURE_TENANT_ID={app['tenantId']}\nAZURE_CLIENT_ID={app['clientId']}\n"
                    f"AZURE_CLIENT_SECRET={app['secret']}\n")
        os.chmod(creds, 0o644)
        state = os.path.join(work, "state")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AZURE_", "IDENTITY_", "KVAUDIT_", "MSI_"))}
        env.update(KVAUDIT=kvaudit, KVAUDIT_STATE_DIR=state, KVAUDIT_ENV_FILE=creds,
                   KVAUDIT_RESOLVE=open(os.path.join(emu, "resolve.txt")).read().strip())
        argv = ["sh", os.path.join(source, "examples/deploy/kvaudit-nightly.sh"),
                "--cloud", os.path.join(emu, "cloud.json"), "--auth", "env", "-q"]
        p = run(argv, env=env, timeout=120)
        check(p.returncode == 2 and "0600" in p.stderr,
              "kvaudit-nightly refuses a credentials file others can read",
              f"rc {p.returncode}: {p.stderr[-500:]}")
        os.chmod(creds, 0o600)
        p = run(argv, env=env, timeout=120)
        reports = sorted(glob.glob(os.path.join(state, "reports", "kvaudit-*.json")))
        last = os.path.join(state, "last.json")
        check(p.returncode == 1 and len(reports) == 1 and os.path.exists(last) and
              open(last, "rb").read() == open(reports[0], "rb").read(),
              "kvaudit-nightly: the first run exits 1 and keeps its report as the baseline",
              f"rc {p.returncode}, reports {reports}: {p.stderr[-800:]}")
        time.sleep(1.1)  # report names carry the UTC second
        p = run(argv, env=env, timeout=120)
        reports = sorted(glob.glob(os.path.join(state, "reports", "kvaudit-*.json")))
        check(p.returncode == 0 and len(reports) == 2 and "no new failing finding" in p.stderr,
              "kvaudit-nightly: an unchanged second run exits 0 (nothing new against the baseline)",
              f"rc {p.returncode}, reports {reports}: {p.stderr[-800:]}")
        for ext in ("html", "sarif", "md"):
            n = len(glob.glob(os.path.join(state, "reports", f"kvaudit-*.{ext}")))
            check(n == 2, f"kvaudit-nightly writes the {ext} report each run", f"{n} files")
    finally:
        try:
            ctx = ssl.create_default_context(cafile=os.path.join(emu, "ca.pem"))
            port = open(os.path.join(emu, "ready")).read().strip()
            urllib.request.urlopen(urllib.request.Request(
                f"https://127.0.0.1:{port}/_emulator/shutdown", data=b"", method="POST"),
                context=ctx, timeout=10).read()
        except Exception:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


def check_deb(kvaudit, source, keep):
    for tool in ("cmake", "cpack", "dpkg-deb"):
        if not shutil.which(tool):
            check(False, ".deb package", f"{tool} is not installed")
            return
    work = tempfile.mkdtemp(prefix="kvaudit-pkg-")
    try:
        build, out, root = (os.path.join(work, d) for d in ("build", "out", "root"))
        jobs = str(min(2, os.cpu_count() or 1))
        env = dict(os.environ)
        for v in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "CFLAGS", "LDFLAGS"):
            env.pop(v, None)
        p = run(["cmake", "-S", source, "-B", build, "-DKVAUDIT_TESTS=OFF",
                 "-DCMAKE_BUILD_TYPE=RelWithDebInfo"], env=env, timeout=300)
        if p.returncode != 0:
            check(False, "configure the package build", (p.stdout + p.stderr)[-2000:])
            return
        p = run(["cmake", "--build", build, "-j", jobs], env=env, timeout=900)
        if p.returncode != 0:
            check(False, "build for packaging", (p.stdout + p.stderr)[-2000:])
            return
        p = run(["cpack", "-G", "DEB", "--config", os.path.join(build, "CPackConfig.cmake"),
                 "-B", out], env=env, cwd=build, timeout=300)
        debs = glob.glob(os.path.join(out, "*.deb"))
        check(p.returncode == 0 and len(debs) == 1, "cpack -G DEB builds one .deb",
              (p.stdout + p.stderr)[-2000:])
        if len(debs) != 1:
            return
        deb = debs[0]
        print(f"     {os.path.basename(deb)} ({os.path.getsize(deb)} bytes)")

        fields = {}
        for f in ("Package", "Version", "Maintainer", "Depends", "Description", "Architecture"):
            fields[f] = run(["dpkg-deb", "-f", deb, f]).stdout.strip()
        check(fields["Package"] == "kvaudit", "control: Package is kvaudit", fields["Package"])
        check(bool(fields["Maintainer"]) and bool(fields["Description"]),
              "control: Maintainer and Description are set", str(fields))
        deps = {d.strip().split()[0] for d in re.split(r"[,|]", fields["Depends"]) if d.strip()}
        want = {"libcjson1", "libpcre2-8-0", "libcurl4", "libssl3"}
        check(want <= deps, "control: Depends names libcjson1, libpcre2-8-0, libcurl4, libssl3",
              fields["Depends"])

        p = run(["dpkg-deb", "-x", deb, root])
        check(p.returncode == 0, "dpkg-deb -x unpacks the package into a temporary root",
              p.stderr)
        binary = os.path.join(root, "usr", "bin", "kvaudit")
        p = run([binary, "--version"], timeout=30)
        want_version = run([kvaudit, "--version"], timeout=30).stdout.strip()
        check(p.returncode == 0 and p.stdout.strip() == want_version and
              p.stdout.startswith("kvaudit "),
              f"<root>/usr/bin/kvaudit --version prints '{want_version}'",
              f"rc {p.returncode}: {p.stdout}{p.stderr}")
        p = run([binary, "rules", "list"], timeout=30)
        catalog = sorted(glob.glob(os.path.join(source, "rules", "catalog", "*.json")))
        check(p.returncode == 0 and len(p.stdout.splitlines()) == len(catalog),
              "the packaged binary lists the embedded rule catalog",
              f"rc {p.returncode}, {len(p.stdout.splitlines())} lines")

        man = os.path.join(root, "usr", "share", "man", "man1", "kvaudit.1")
        if os.path.exists(man + ".gz"):
            with gzip.open(man + ".gz", "rt", encoding="utf-8") as f:
                man_text = f.read()
        elif os.path.exists(man):
            with open(man, encoding="utf-8") as f:
                man_text = f.read()
        else:
            man_text = None
        with open(os.path.join(source, "docs", "kvaudit.1"), encoding="utf-8") as f:
            check(man_text == f.read(), "the package has usr/share/man/man1/kvaudit.1")
        comp = os.path.join(root, "usr", "share", "bash-completion", "completions", "kvaudit")
        check(os.path.isfile(comp) and "complete -o filenames -F _kvaudit kvaudit" in
              open(comp, encoding="utf-8").read(),
              "the package has usr/share/bash-completion/completions/kvaudit")
        rules = sorted(os.path.basename(r) for r in
                       glob.glob(os.path.join(root, "usr", "share", "kvaudit", "rules", "*.json")))
        check(rules == [os.path.basename(c) for c in catalog],
              f"the package has the {len(catalog)} catalog rules in usr/share/kvaudit/rules",
              f"got {rules}")
        listing = run(["dpkg-deb", "-c", deb]).stdout
        check("./usr/bin/kvaudit" in listing and "./usr/local" not in listing,
              "the package installs under /usr", listing[:1000])
    finally:
        if keep:
            print(f"     kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kvaudit", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--skip-deb", action="store_true", help="only the man page and completion")
    ap.add_argument("--keep", action="store_true", help="keep the temporary package build")
    a = ap.parse_args()
    kvaudit, source = os.path.abspath(a.kvaudit), os.path.abspath(a.source)
    check_man(kvaudit, source)
    check_completion(kvaudit, source)
    check_examples(source)
    check_nightly(kvaudit, source)
    if not a.skip_deb:
        check_deb(kvaudit, source, a.keep)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
