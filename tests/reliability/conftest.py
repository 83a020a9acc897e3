"""tests/reliability/: the soak is a script, run by hand or by test_soak_smoke.py, never collected."""

collect_ignore = ["soak.py", "soak_probes.py"]
