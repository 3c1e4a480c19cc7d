"""Start/stop `minnow serve` for the server tests: free loopback port, bounded waits, always killed."""
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

SMOL = "SmolLM2-135M-Instruct.Q4_1.gguf"


def minnow_bin():
    b = os.environ.get("MINNOW_BIN")
    if not b:
        src = Path(os.environ.get("MINNOW_SOURCE_DIR", Path(__file__).resolve().parents[2]))
        b = str(src / "build" / "bin" / "minnow")
    if not Path(b).exists():
        pytest.skip(f"minnow binary not found at {b}")
    return b


def smol_model():
    cache = Path(os.environ.get("MINNOW_MODEL_CACHE", Path.home() / ".cache" / "minnow"))
    p = cache / SMOL
    if not p.exists():
        pytest.skip(f"{SMOL} not in {cache} (run scripts/fetch_model.sh)")
    return str(p)


class Server:
    """A running `minnow serve`. Use as a context manager or call stop()."""

    def __init__(self, model, args=(), env=None, wait_ready=True, timeout=120):
        self.log = []
        e = dict(os.environ)
        e.update(env or {})
        cmd = [minnow_bin(), "serve", "-m", model, "--port", "0"] + list(args)
        if "MINNOW_PORT" in (env or {}):
            cmd = [minnow_bin(), "serve", "-m", model] + list(args)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=e, text=True)
        self.port = None
        self._port_ready = threading.Event()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        if not self._port_ready.wait(timeout):
            self.stop()
            raise RuntimeError("server did not start listening:\n" + "".join(self.log))
        if self.port is None:
            self.stop()
            raise RuntimeError("server exited before listening:\n" + "".join(self.log))
        self.base = f"http://127.0.0.1:{self.port}"
        if wait_ready:
            self.wait_ready(timeout)

    def _read_stderr(self):
        for line in self.proc.stderr:
            self.log.append(line)
            m = re.search(r"listening on http://[^:]+:(\d+)", line)
            if m and self.port is None:
                self.port = int(m.group(1))
                self._port_ready.set()
        self._port_ready.set()

    def wait_ready(self, timeout=120):
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited while loading:\n" + "".join(self.log))
            st, _ = self.get("/health")
            if st == 200:
                return
            time.sleep(0.05)
        raise RuntimeError("server not ready in time:\n" + "".join(self.log))

    def request(self, method, path, body=None, headers=None, timeout=120):
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            if isinstance(data, str):
                data = data.encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode("utf-8", "replace")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return -1, ""

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)

    def metrics(self, headers=None):
        st, text = self.get("/metrics", headers=headers)
        assert st == 200, text
        out = {}
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
        return out

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stops the server; returns its exit code (kills it if it does not exit in time)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * (len(xs) - 1)))))
    return xs[k]
