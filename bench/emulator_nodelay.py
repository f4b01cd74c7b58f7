#!/usr/bin/env python3
"""Run tests/emulator/emulator.py with TCP_NODELAY on its connections (benchmarks only).

The emulator's handler writes the response headers and the body in two send() calls. With Nagle's
algorithm on, the body waits for the client's (delayed, ~40 ms on Linux) ACK of the headers, so
every request on a kept-alive connection costs ~40 ms more than the emulator's injected latency.
Azure does not behave like that, and the benchmark should measure kvaudit, not that artefact.
This wrapper sets socketserver's disable_nagle_algorithm on the emulator's Handler and runs its
main() unchanged; all options are the emulator's. bench/run.sh uses it unless --nagle is given.
"""
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = os.path.join(HERE, "..", "tests", "emulator", "emulator.py")

spec = importlib.util.spec_from_file_location("kvaudit_emulator", PATH)
emu = importlib.util.module_from_spec(spec)
sys.modules["kvaudit_emulator"] = emu
spec.loader.exec_module(emu)
emu.Handler.disable_nagle_algorithm = True  # StreamRequestHandler.setup() then sets TCP_NODELAY

if __name__ == "__main__":
    sys.exit(emu.main())
