"""What every end-to-end suite that talks to the Azure emulator shares: starting one emulator
process (tests/emulator/emulator.py) in its own work directory, its control API, the environment
for one credential type, running the real kvaudit binary against it, and the command line
(--kvaudit BIN --source REPO, then optional test names) with the 'N passed, N failed' line.

Suites import it as:  from emulator_helper import ARGS, Emulator, kvaudit, main
"""
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

ARGS = {}
BMS_APP = "262044b1-e2ce-469f-a196-69ab7ada62d3"
AVA = "ava.lindqvist@northwindtraders.com"
AVA_PASSWORD = "Emulator-Ava-Passw0rd!"


class Emulator:
    """One emulator process with its own work directory.

    overlay: a scenario overlay (dict) merged over tests/emulator/scenarios/demo.json.
    scenario: another base scenario file instead of the demo.
    extra: more emulator command-line arguments.
    """

    def __init__(self, overlay=None, kv_urls="noport", scenario=None, extra=()):
        self.dir = tempfile.mkdtemp(prefix="kvaudit-emu-")
        cmd = [sys.executable, os.path.join(ARGS["source"], "tests/emulator/emulator.py"),
               "--scenario", scenario or os.path.join(ARGS["source"], "tests/emulator/scenarios/demo.json"),
               "--workdir", self.dir, "--kv-urls", kv_urls, "--max-seconds", "600"] + list(extra)
        if overlay:
            path = os.path.join(self.dir, "overlay.json")
            with open(path, "w") as f:
                json.dump(overlay, f)
            cmd += ["--overlay", path]
        self.log = open(os.path.join(self.dir, "emulator.log"), "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while not os.path.exists(os.path.join(self.dir, "ready")):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("emulator did not start: " + open(self.log.name).read())
            time.sleep(0.05)
        self.port = int(open(os.path.join(self.dir, "ready")).read().strip())
        self.info = json.load(open(os.path.join(self.dir, "emulator.json")))
        self.base = f"https://127.0.0.1:{self.port}"
        self.ctx = ssl.create_default_context(cafile=os.path.join(self.dir, "ca.pem"))
        cloud = json.load(open(os.path.join(self.dir, "cloud.json")))
        cloud.setdefault("backupAppId", BMS_APP)
        self.cloud = os.path.join(self.dir, "cloud-kvaudit.json")
        with open(self.cloud, "w") as f:
            json.dump(cloud, f)
        self.connect_to = open(os.path.join(self.dir, "connect-to.txt")).read().strip()

    # ---- the control API (/_emulator/..., see tests/emulator/README.md) ----
    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=self.ctx, timeout=10) as r:
            text = r.read()
        return json.loads(text) if text else None

    def requests(self):
        return self.call("GET", "/_emulator/log")

    def writes(self):
        return [r for r in self.requests() if r["method"] in ("PUT", "DELETE", "PATCH")
                and r["surface"] != "login"]

    def clear(self):
        self.call("DELETE", "/_emulator/log")
        self.call("DELETE", "/_emulator/faults")

    def fault(self, f):
        return self.call("POST", "/_emulator/faults", f)

    def vault(self, name):
        return self.call("GET", "/_emulator/state/vaults/" + name)

    def role_assignments(self):
        return self.call("GET", "/_emulator/state/roleAssignments")

    def stop(self):
        try:
            self.call("POST", "/_emulator/shutdown")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def env(self, auth="secret"):
        """The environment for one credential type (nothing inherited that could pick another)."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AZURE_", "IDENTITY_", "KVAUDIT_", "MSI_"))}
        env["KVAUDIT_CONNECT_TO"] = self.connect_to
        env["PATH"] = "/usr/bin:/bin"
        apps = self.info["apps"] if isinstance(self.info["apps"], list) else list(self.info["apps"].values())
        default = self.info.get("defaultApp") or apps[0]["clientId"]
        app = next(a for a in apps if a["clientId"] == default)
        if auth in ("secret", "certificate", "federated"):
            env["AZURE_TENANT_ID"] = app["tenantId"]
            env["AZURE_CLIENT_ID"] = app["clientId"]
            if auth == "secret":
                env["AZURE_CLIENT_SECRET"] = app["secret"]
            elif auth == "certificate":
                env["AZURE_CLIENT_CERTIFICATE_PATH"] = app["certificatePath"]
            else:
                env["AZURE_FEDERATED_TOKEN_FILE"] = app["federatedTokenPath"]
        elif auth == "imds":
            env["KVAUDIT_IMDS_ENDPOINT"] = self.info["imds"]
        elif auth == "appservice":
            env["IDENTITY_ENDPOINT"] = self.info["identityEndpoint"]
            env["IDENTITY_HEADER"] = self.info["identityHeader"]
        elif auth == "cli":
            env["PATH"] = os.path.join(self.dir, "bin") + ":/usr/bin:/bin"
            env["KVAUDIT_FAKE_AZ_USER"] = AVA
            env["KVAUDIT_FAKE_AZ_PASSWORD"] = AVA_PASSWORD
            env["KVAUDIT_FAKE_AZ_WORKDIR"] = self.dir
        return env


def kvaudit(emu, args, auth="secret", cloud=None, timeout=120, stdin=subprocess.DEVNULL, extra_env=None):
    """Runs `kvaudit COMMAND --cloud EMU --auth M REST...` with one credential; stdin is not a terminal."""
    method = {"imds": "msi", "appservice": "msi", "cli": "cli"}.get(auth, "env")
    cmd = [ARGS["kvaudit"]] + args[:1] + ["--cloud", cloud or emu.cloud, "--auth", method] + args[1:]
    env = emu.env(auth)
    env.update(extra_env or {})
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=emu.dir, stdin=stdin)


def main(module_name="__main__", flags=("--kvaudit", "--source")):
    """Parses --kvaudit/--source (and any other FLAG VALUE pairs named in flags) into ARGS, runs the
    module's tests (or the names given), prints 'N passed, N failed' and returns the exit status."""
    argv = sys.argv[1:]
    rest = []
    i = 0
    while i < len(argv):
        if argv[i] in flags:
            ARGS[argv[i][2:]] = os.path.abspath(argv[i + 1])
            i += 2
        else:
            rest.append(argv[i])
            i += 1
    module = sys.modules[module_name]
    loader = unittest.defaultTestLoader
    suite = loader.loadTestsFromNames(rest, module) if rest else loader.loadTestsFromModule(module)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    failed = len(result.failures) + len(result.errors)
    print(f"{result.testsRun - failed} passed, {failed} failed")
    return 1 if failed or result.testsRun == 0 else 0
