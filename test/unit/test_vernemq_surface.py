"""packaging/vernemq_surface.py: VerneMQ's vmq-admin commands (test/vernemq_cli/commands.txt) against vmqpy's."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "packaging" / "vernemq_surface.py"
# owned elsewhere (vmq_bridge, vmq_diversity) or VerneMQ's separate web UI
NOT_HERE = {"bridge show", "bridge start", "script load", "script reload", "script show", "script unload",
            "webui install", "webui show"}


def test_every_vernemq_command_but_the_plugins_ones_is_present():
    out = subprocess.run([sys.executable, str(SCRIPT), "--list"], capture_output=True, text=True, check=True).stdout
    marks = {line.split("vmq-admin ", 1)[1]: line.split()[0] for line in out.splitlines() if line.startswith("  ")}
    assert len(marks) == 55
    assert {c for c, mark in marks.items() if mark == "MISSING"} <= NOT_HERE
    assert marks["node upgrade"] == "erlang-only" and marks["config show"] == "present"
    assert "of VerneMQ's 55 present" in out
