"""Load on one server: 100 concurrent clients, each an offline multi-task request, beside 1 client.

    .venv/bin/python benchmarks/bench_server.py [--clients 100] [--single 10]

Starts ``baton serve`` on 127.0.0.1 (a free port, a fresh BATON_HOME, no UI) in a subprocess and
sends OpenAI-style chat completions: "read the text in this image aloud" with the bundled example
as a data URL, which the local planner turns into OCR (tesseract) -> text-to-speech (espeak-ng).
Each client sends one request; all of them are in flight at once. Printed for 1 client (one request
after another) and for N concurrent clients: requests, errors, p50/p99/max latency, requests/s.
Then the store is checked: one succeeded run per request. Loopback only; bounded in count and time
(``--deadline`` seconds for the whole benchmark). Exit code 1 on any error.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
IMAGE = base64.b64encode((REPO / "examples" / "sign.png").read_bytes()).decode()
BODY = {
    "model": "baton-local",
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "read the text in this image aloud"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{IMAGE}"}},
            ],
        }
    ],
}


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(the process's own CPU seconds, its finished children's), from /proc; zeros elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    utime, stime, cutime, cstime = (int(value) / tick for value in fields[11:15])
    return utime + stime, cutime + cstime


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATON_", "OPENAI_"))}
    env["BATON_HOME"] = str(home)
    command = [sys.executable, "-m", "baton", "serve", "--port", str(port), "--no-ui", "--log-level", "warning"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_until_up(url: str, deadline: float) -> None:
    with httpx.Client(transport=httpx.HTTPTransport(retries=30)) as client:  # connection retries with backoff
        while True:
            try:
                if client.get(url + "/health", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not start")


async def one(client: httpx.AsyncClient) -> tuple[float, str | None]:
    began = time.perf_counter()
    try:
        response = await client.post("/v1/chat/completions", json=BODY)
    except httpx.HTTPError as exc:
        return time.perf_counter() - began, f"{type(exc).__name__}: {exc}"
    took = time.perf_counter() - began
    if response.status_code != 200:
        return took, f"HTTP {response.status_code}: {response.text[:200]}"
    data = response.json()
    answer = data["choices"][0]["message"]["content"]
    if data["baton"]["status"] != "succeeded" or "Welcome to the baton demo" not in answer:
        return took, f"run {data['baton']['run_id']} {data['baton']['status']}"
    return took, None


async def sequential(url: str, count: int, timeout: float) -> tuple[list[tuple[float, str | None]], float]:
    async with httpx.AsyncClient(base_url=url, timeout=timeout) as client:
        began = time.perf_counter()
        results = [await one(client) for _ in range(count)]
        return results, time.perf_counter() - began


async def concurrent(url: str, clients: int, timeout: float) -> tuple[list[tuple[float, str | None]], float]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        began = time.perf_counter()
        results = await asyncio.gather(*(one(client) for _ in range(clients)))
        return list(results), time.perf_counter() - began


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    rank = max(1, round(share * len(ordered)))  # nearest rank
    return ordered[rank - 1]


def row(label: str, results: list[tuple[float, str | None]], wall: float) -> dict[str, Any]:
    latencies = [took for took, _ in results]
    errors = [error for _, error in results if error]
    return {
        "clients": label,
        "requests": len(results),
        "errors": len(errors),
        "p50 s": percentile(latencies, 0.50),
        "p99 s": percentile(latencies, 0.99),
        "max s": max(latencies),
        "requests/s": len(results) / wall,
        "wall s": wall,
        "first error": errors[0] if errors else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100, help="concurrent clients (one request each)")
    parser.add_argument("--single", type=int, default=10, help="requests for the single client, one after another")
    parser.add_argument("--deadline", type=float, default=600, help="seconds for the whole benchmark")
    args = parser.parse_args()
    deadline = time.monotonic() + args.deadline
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-server-") as folder:
        home = Path(folder) / "home"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(home, port)
        try:
            wait_until_up(url, min(deadline, time.monotonic() + 60))
            asyncio.run(sequential(url, 1, 60))  # warm-up: experts loaded, programs in the page cache
            left = deadline - time.monotonic()
            single, single_wall = asyncio.run(sequential(url, args.single, left))
            own_before, children_before = cpu_seconds(server.pid)
            left = deadline - time.monotonic()
            many, many_wall = asyncio.run(concurrent(url, args.clients, left))
            own_after, children_after = cpu_seconds(server.pid)
            sessions = httpx.get(url + "/sessions", timeout=30).json()
        finally:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
    rows = [row("1", single, single_wall), row(str(args.clients), many, many_wall)]
    print(f"baton serve on 127.0.0.1, {os.cpu_count()} CPU cores; request: OCR -> text-to-speech of examples/sign.png")
    print(
        f"load average before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f} (other work on the machine slows it)"
    )
    columns = ["clients", "requests", "errors", "p50 s", "p99 s", "max s", "requests/s", "wall s"]
    print("  ".join(f"{c:>10}" for c in columns))
    for item in rows:
        print("  ".join(f"{item[c]:>10.2f}" if isinstance(item[c], float) else f"{item[c]:>10}" for c in columns))
    for item in rows:
        if item["first error"]:
            print(f"first error with {item['clients']} client(s): {item['first error']}")
    if own_after:
        own = (own_after - own_before) / args.clients * 1000
        children = (children_after - children_before) / args.clients * 1000
        print(
            f"CPU per request with {args.clients} clients: server process {own:.0f} ms, expert programs {children:.0f} ms"
        )
    expected = 1 + args.single + args.clients
    print(f"store: {len(sessions)} sessions for {expected} requests")
    failed = sum(item["errors"] for item in rows) or len(sessions) != expected
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
