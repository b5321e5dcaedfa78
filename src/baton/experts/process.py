"""Programs run by experts, tracked so that an interrupted run can stop them with itself."""

from __future__ import annotations

import subprocess
import threading

from baton.experts import ExpertError

__all__ = ["run_program", "stop_programs"]

_running: set[subprocess.Popen[bytes]] = set()
_lock = threading.Lock()


def run_program(
    command: list[str], *, input: bytes | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[bytes]:
    """Run a program to completion and capture its output; raises ExpertError when it overruns."""
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with _lock:
        _running.add(process)
    try:
        stdout, stderr = process.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise ExpertError(f"{command[0]} took over {timeout:g} s and was stopped; give it a smaller input") from None
    finally:
        with _lock:
            _running.discard(process)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def stop_programs() -> None:
    """Terminate every program experts are still running (on Ctrl-C or shutdown)."""
    with _lock:
        processes = list(_running)
    for process in processes:
        process.kill()
