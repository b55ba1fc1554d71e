#!/usr/bin/env python3
"""What the gateway adds, measured the way issue 14 measured it: wrk on loopback against the
release `ares` binary and an instant upstream (`examples/mock_upstream.rs`), the upstream
measured directly in the same run, all three on this machine's cores.

    python3 benches/wrk_gateway.py            # 3 rounds of 5 s per cell, then 60 s of c=32 load
    ROUNDS=5 SECS=10 LOAD_SECS=60 python3 benches/wrk_gateway.py
    PERF=1 python3 benches/wrk_gateway.py     # also a `perf` profile of the server at c=1 and c=32
    BASELINE_BIN=/tmp/ares-old python3 benches/wrk_gateway.py   # and another build, same rounds
    EXTRA_TOML=$'[observability]\nrequest_log_days = 0' BASELINE_BIN=… python3 benches/wrk_gateway.py
                                              # the current build with a setting changed

Needs `wrk` (Debian: `apt-get install wrk`) and, for PERF=1, `perf`. Builds what it runs.

Each round measures, in this order: the mock directly and `POST /v1/chat` through ARES (a
tenant key on the enterprise tier, the IP limiter off, `agent_type: "product"`: one upstream
call per request) at c=1 and c=32, a bare forwarding proxy on the same HTTP stack
(`examples/bare_proxy.rs`, the ceiling for any gateway here) at c=32, then `GET /health` and
`GET /v1/agents` at c=32. It reports the medians over rounds of p50, p99 and requests/s, the
added latency (through minus direct) and the ratios the issue sets targets for. Then it loads `/v1/chat` at c=32 for LOAD_SECS and
reports the server's RSS after warm-up, at the end of the load, and 5 s after it stopped.

With BASELINE_BIN (another build of `ares`, e.g. the previous commit's), a second server runs
from it beside the first and its `/v1/chat` cells are measured in the same rounds, so a change's
cost is read against a baseline measured under the same noise.
"""

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SECS = int(os.environ.get("SECS", "5"))
LOAD_SECS = int(os.environ.get("LOAD_SECS", "60"))
# TOML appended to the current build's config only (the baseline keeps the plain one).
EXTRA_TOML = os.environ.get("EXTRA_TOML", "")
PERF = os.environ.get("PERF") == "1"
BASELINE = os.environ.get("BASELINE_BIN")
ADMIN = "wrk-admin-secret"
CHAT = {"message": "Say something short.", "agent_type": "product"}
DIRECT = {
    "model": "mock-model",
    "messages": [
        {"role": "system", "content": "You are a helpful, general-purpose assistant."},
        {"role": "user", "content": "Say something short."},
    ],
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def micros(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1, "ms": 1000, "s": 1_000_000}[unit]


def wrk(url, concurrency, secs, body=None, key=None, workdir="."):
    """One wrk run: (p50 µs, p99 µs, requests/s)."""
    script = os.path.join(workdir, "request.lua")
    with open(script, "w") as f:
        if body is not None:
            f.write('wrk.method = "POST"\n')
            f.write(f"wrk.body = {json.dumps(json.dumps(body))}\n")
            f.write('wrk.headers["Content-Type"] = "application/json"\n')
        if key is not None:
            f.write(f'wrk.headers["Authorization"] = "Bearer {key}"\n')
    threads = 1 if concurrency == 1 else 2
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{secs}s", "--latency", "-s", script, url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    if "Non-2xx" in out:
        sys.exit(f"wrk saw errors from {url}:\n{out}")
    p50 = micros(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = micros(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    rps = float(re.search(r"^Requests/sec:\s+(\S+)", out, re.M).group(1))
    return p50, p99, rps


def wait_for(url, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{url} did not answer within {seconds} s")


def post(url, body, headers):
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json", **headers})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def perf(pid, secs, label, workdir):
    """Profile the server while a wrk cell runs; returns the `perf report` head."""
    data = os.path.join(workdir, f"perf-{label}.data")
    recorder = subprocess.Popen(
        ["perf", "record", "-F", "999", "--call-graph", "dwarf,32768", "-p", str(pid), "-o", data, "--", "sleep", str(secs)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return recorder, data


def perf_report(data):
    """Inclusive time of the server's own functions (`ares::`), then the top self times."""
    def report(*args):
        out = subprocess.run(
            ["perf", "report", "-i", data, "--stdio", "-g", "none", *args], capture_output=True, text=True
        ).stdout
        return [l.rstrip()[:140] for l in out.splitlines() if l.strip() and not l.startswith("#")]

    inclusive = [l for l in report("--children", "--sort", "symbol") if "ares::" in l][:45]
    own = report("--no-children", "--sort", "dso,symbol")[:25]
    return "inclusive (children), ares:: frames:\n" + "\n".join(inclusive) + "\nself:\n" + "\n".join(own)


def main():
    subprocess.run(
        ["cargo", "build", "--release", "--bin", "ares", "--example", "mock_upstream", "--example", "bare_proxy"],
        cwd=ROOT,
        check=True,
    )
    work = tempfile.mkdtemp(prefix="ares-wrk-")
    mock = subprocess.Popen(
        [os.path.join(ROOT, "target/release/examples/mock_upstream")], stdout=subprocess.PIPE, text=True
    )
    mock_url = mock.stdout.readline().strip()
    proxy = subprocess.Popen(
        [os.path.join(ROOT, "target/release/examples/bare_proxy"), mock_url], stdout=subprocess.PIPE, text=True
    )
    proxy_url = proxy.stdout.readline().strip()
    with open(os.path.join(ROOT, "benches/support/gateway.toml")) as f:
        template = f.read().replace("MOCK_URL", mock_url)
    servers = []

    def start(binary, name, extra=""):
        """Serve the gateway config (plus `extra` TOML) from `binary`; returns (base URL, tenant
        key, process)."""
        config = os.path.join(work, f"ares-{name}.toml")
        with open(config, "w") as f:
            f.write(template + "\n" + extra + "\n")
        port = free_port()
        env = {**os.environ, "ADMIN_API_KEY": ADMIN, "JWT_SECRET": "wrk-jwt-secret-wrk-jwt-secret-0123456789"}
        data = os.path.join(work, f"data-{name}")
        process = subprocess.Popen(
            [binary, "serve", "--config", config, "--data-dir", data, "--port", str(port)], env=env
        )
        servers.append(process)
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/health")
        provisioned = post(
            f"{base}/api/admin/provision-client",
            {"name": "wrk", "tier": "enterprise", "product_type": "generic", "api_key_name": "wrk"},
            {"X-Admin-Secret": ADMIN},
        )
        return base, provisioned["raw_api_key"], process

    try:
        base, key, server = start(os.path.join(ROOT, "target/release/ares"), "current", EXTRA_TOML)
        baseline = start(BASELINE, "baseline") if BASELINE else None
        post(f"{base}/v1/chat", CHAT, {"Authorization": f"Bearer {key}"})
        if baseline:
            post(f"{baseline[0]}/v1/chat", CHAT, {"Authorization": f"Bearer {baseline[1]}"})
        print(f"wrk_gateway: {ROUNDS} round(s) of {SECS} s per cell; wrk, ares and the mock share this machine")
        print(f"server RSS idle: {rss_mib(server.pid):.1f} MiB")

        # Each baseline cell runs right after its counterpart, so both see the same conditions.
        cells = {"direct c=1": (f"{mock_url}/v1/chat/completions", 1, DIRECT, None)}
        cells["/v1/chat c=1"] = (f"{base}/v1/chat", 1, CHAT, key)
        if baseline:
            cells["baseline /v1/chat c=1"] = (f"{baseline[0]}/v1/chat", 1, CHAT, baseline[1])
        cells["direct c=32"] = (f"{mock_url}/v1/chat/completions", 32, DIRECT, None)
        cells["bare proxy c=32"] = (f"{proxy_url}/v1/chat/completions", 32, DIRECT, None)
        cells["/v1/chat c=32"] = (f"{base}/v1/chat", 32, CHAT, key)
        if baseline:
            cells["baseline /v1/chat c=32"] = (f"{baseline[0]}/v1/chat", 32, CHAT, baseline[1])
        cells["/health c=32"] = (f"{base}/health", 32, None, None)
        cells["/v1/agents c=32"] = (f"{base}/v1/agents", 32, None, key)
        if PERF:
            # A pass of its own: the profiler slows the server, so these runs are not counted.
            for name, (url, concurrency, body, auth) in cells.items():
                if name.startswith("/v1/"):
                    recorder, data = perf(server.pid, SECS, name.replace("/", "_").replace(" ", ""), work)
                    wrk(url, concurrency, SECS, body, auth, work)
                    recorder.wait()
                    print(f"\nperf, server only, {name}:\n{perf_report(data)}\n")
        results = {name: [] for name in cells}
        for _ in range(ROUNDS):
            for name, (url, concurrency, body, auth) in cells.items():
                results[name].append(wrk(url, concurrency, SECS, body, auth, work))

        med = {name: tuple(statistics.median(r[i] for r in runs) for i in range(3)) for name, runs in results.items()}
        print()
        print(f"{'cell':<24}| {'p50':>10} {'p99':>10} {'req/s':>10}   (medians of {ROUNDS})")
        print("-" * 62)
        for name, (p50, p99, rps) in med.items():
            print(f"{name:<24}| {p50:>8.0f}µs {p99:>8.0f}µs {rps:>10.0f}")
        print()
        added_p50 = med["/v1/chat c=1"][0] - med["direct c=1"][0]
        added_p99 = med["/v1/chat c=1"][1] - med["direct c=1"][1]
        print(f"/v1/chat added at c=1: p50 {added_p50:.0f} µs (target ≤ 150), p99 {added_p99:.0f} µs (target ≤ 1000)")
        print(f"c=32 throughput through/direct: {med['/v1/chat c=32'][2] / med['direct c=32'][2]:.3f} (target ≥ 0.25)")
        print(
            f"  ceiling, a bare forwarding proxy on the same stack (examples/bare_proxy.rs): "
            f"{med['bare proxy c=32'][2] / med['direct c=32'][2]:.3f} of direct; "
            f"/v1/chat is {med['/v1/chat c=32'][2] / med['bare proxy c=32'][2]:.3f} of it"
        )
        if baseline:
            base_p50 = med["baseline /v1/chat c=1"][0] - med["direct c=1"][0]
            base_p99 = med["baseline /v1/chat c=1"][1] - med["direct c=1"][1]
            print(f"  baseline build ({BASELINE}) added at c=1: p50 {base_p50:.0f} µs, p99 {base_p99:.0f} µs")
            print(
                f"  baseline c=32 throughput through/direct: "
                f"{med['baseline /v1/chat c=32'][2] / med['direct c=32'][2]:.3f}"
            )
        print(f"/v1/agents vs /health at c=32: {med['/v1/agents c=32'][2] / med['/health c=32'][2]:.3f} (target ≥ 0.7)")

        wrk(f"{base}/v1/chat", 32, 5, CHAT, key, work)
        warm = rss_mib(server.pid)
        wrk(f"{base}/v1/chat", 32, LOAD_SECS, CHAT, key, work)
        loaded = rss_mib(server.pid)
        time.sleep(5)
        after = rss_mib(server.pid)
        print(
            f"RSS after 5 s warm-up {warm:.1f} MiB; after {LOAD_SECS} s of c=32 /v1/chat {loaded:.1f} MiB "
            f"(target ≤ 64); 5 s later {after:.1f} MiB ({(after / warm - 1) * 100:+.1f} % of warm-up, target ±10 %)"
        )
    finally:
        for process in servers:
            process.terminate()
            process.wait()
        proxy.terminate()
        mock.terminate()
        # Each run's data dirs hold gigabytes of request log; interrupted runs once filled the disk.
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    # A SIGTERM ends the run through the `finally` above, like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
