"""The soak script, run for a few seconds so that it keeps working: see tests/reliability/soak.py."""

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_a_short_soak_runs_clean_and_reports_every_process_and_tier(tmp_path: Path) -> None:
    summary_file = tmp_path / "soak.json"
    result = subprocess.run(
        [sys.executable, "-m", "tests.reliability.soak", "--seconds", "5", "--workers", "2", "--concurrency", "4",
         "--sample-every", "1", "--json", str(summary_file)],
        cwd=REPO, capture_output=True, text=True, timeout=180, check=False)

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = json.loads(summary_file.read_text())
    report = result.stdout[-3000:]
    assert summary["passed"] and summary["errors"] == {}, report
    assert set(summary["requests"]) == {"hit", "cold-preview", "original", "range"}
    roles = [process["role"] for process in summary["processes"]]
    assert roles.count("supervisor") == 1 and roles.count("worker") == 2, report
    assert all(process["samples"] >= 2 and process["rss_peak_mib"] > 0 for process in summary["processes"]), report
    assert set(summary["tiers"]) == {"storage", "previews", "image-converter"}
    assert all(tier["bound"] for tier in summary["tiers"].values())
    assert summary["tiers"]["storage"]["bytes"] > 0 and summary["tiers"]["previews"]["bytes"] > 0
    assert "server exited with status 0" in result.stderr
