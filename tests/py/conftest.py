"""Shared pytest hooks for the ctest-driven suites (each tests/py/test_*.py is one ctest entry).

A file whose tests all skip (or that collects none) exits with 77, which tests/CMakeLists.txt declares as
ctest's SKIP_RETURN_CODE: it shows as "Skipped" in ctest's summary, never as "Passed". Skips inside a file
that also passed tests are listed with their reasons (pytest -rs) and counted by scripts/skip_summary.py."""

SKIP_EXIT = 77


def pytest_sessionfinish(session, exitstatus):
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    stats = tr.stats if tr is not None else {}
    ran = sum(len(stats.get(k, [])) for k in ("passed", "failed", "error", "xfailed", "xpassed"))
    if exitstatus == 5 or (exitstatus == 0 and ran == 0 and stats.get("skipped")):
        session.exitstatus = SKIP_EXIT
