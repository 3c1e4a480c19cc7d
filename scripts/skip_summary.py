#!/usr/bin/env python3
"""Counts and lists every skipped test of the last ctest run, with its reason, from ctest's log
(build/Testing/Temporary/LastTest.log): gtest cases that called GTEST_SKIP and pytest cases that skipped (the
py_ entries run pytest -rs, which prints one `SKIPPED [n] file:line: reason` line per reason). scripts/test.sh
prints this at the end of CI, so a new silent skip is visible. Skips whose reason does not mention CUDA or a
GPU are flagged: a CPU-only run should have no others."""
import re
import sys

ALLOWED = re.compile(r"cuda|gpu", re.I)


def skips(log_text):
    out = []  # (ctest name, count, reason)
    for block in re.split(r"\n-{58}\n\n", log_text):
        m = re.search(r"^\d+/\d+ Testing: (.+)$", block, re.M)
        if not m:
            continue
        name = m.group(1).strip()
        for pm in re.finditer(r"^SKIPPED \[(\d+)\] (.+)$", block, re.M):
            out.append((name, int(pm.group(1)), pm.group(2).strip()))
        lines = block.splitlines()
        for i, line in enumerate(lines):
            g = re.match(r"^\[  SKIPPED \] (\S+) \(\d+ ms\)", line)
            if not g:
                continue
            reason = []  # the lines between "file:line: Skipped" and "[  SKIPPED ]"
            j = i - 1
            while j >= 0 and not lines[j].endswith(": Skipped") and not lines[j].startswith("[ RUN"):
                if lines[j].strip():
                    reason.insert(0, lines[j].strip())
                j -= 1
            out.append((g.group(1), 1, " ".join(reason) or "(no reason given)"))
    return out


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "build/Testing/Temporary/LastTest.log"
    try:
        with open(path, errors="replace") as f:
            found = skips(f.read())
    except OSError as e:
        print(f"skip summary: cannot read {path}: {e}")
        return 1
    total = sum(n for _, n, _ in found)
    unexpected = sum(n for _, n, r in found if not ALLOWED.search(r))
    print(f"\n=== skipped tests: {total} ({unexpected} for a reason other than CUDA / no GPU) ===")
    for name, n, reason in found:
        flag = "" if ALLOWED.search(reason) else "  <-- not a CUDA skip"
        print(f"  {name}: {n} x {reason}{flag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
