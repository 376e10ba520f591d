"""Peak memory (``VmHWM``) of the processes under test, found through /proc.

Processes are found by what they do rather than by name alone: the auth API and the
nginx master and workers hold the listening socket of their port; the auth worker is
the auth API's sibling started the same way (``python -m auth_service worker``).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_PROC = Path("/proc")


@dataclass
class ProcMemory:
    role: str
    pid: int
    command: str
    vm_hwm_mib: float | None
    vm_rss_mib: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _status_kib(pid: int | str, key: str) -> int | None:
    try:
        for line in (_PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def cmdline(pid: int) -> str:
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def parent_of(pid: int) -> int | None:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
        # "pid (comm) state ppid ..." - comm may contain spaces and parentheses.
        return int(stat.rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _pids() -> list[int]:
    return [int(p.name) for p in _PROC.iterdir() if p.name.isdigit()]


def descendants(root: int) -> list[int]:
    """Every process below ``root`` (children, grandchildren, ...)."""
    parents = {pid: parent_of(pid) for pid in _pids()}
    found: list[int] = []
    frontier = [root]
    while frontier:
        current = frontier.pop()
        for pid, parent in parents.items():
            if parent == current and pid not in found:
                found.append(pid)
                frontier.append(pid)
    return found


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = (_PROC / "net" / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def listening_pids(port: int) -> list[int]:
    """Processes holding a listening TCP socket on ``port`` (needs to see their fds)."""
    targets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not targets:
        return []
    found = []
    for pid in _pids():
        fd_dir = _PROC / str(pid) / "fd"
        try:
            for fd in os.listdir(fd_dir):
                try:
                    if os.readlink(fd_dir / fd) in targets:
                        found.append(pid)
                        break
                except OSError:
                    continue
        except OSError:
            continue
    return sorted(found)


def measure(role: str, pid: int) -> ProcMemory:
    hwm, rss = _status_kib(pid, "VmHWM"), _status_kib(pid, "VmRSS")
    return ProcMemory(
        role=role,
        pid=pid,
        command=cmdline(pid)[:120],
        vm_hwm_mib=round(hwm / 1024, 1) if hwm is not None else None,
        vm_rss_mib=round(rss / 1024, 1) if rss is not None else None,
    )


def stack_memory(
    *, gateway_port: int | None, auth_port: int | None, stack_pid: int | None
) -> list[ProcMemory]:
    """VmHWM of nginx (master and each worker), the auth API and the auth worker."""
    result: list[ProcMemory] = []
    mine = set(descendants(stack_pid)) if stack_pid else None
    if gateway_port:
        for pid in listening_pids(gateway_port):
            command = cmdline(pid)
            if "nginx" not in command:
                continue
            role = "nginx worker" if "worker process" in command else "nginx master"
            result.append(measure(role, pid))
    api_pids = [p for p in listening_pids(auth_port)] if auth_port else []
    for pid in api_pids:
        result.append(measure("auth API", pid))
    # The worker: a sibling of the API (same parent, same package, "worker").
    parents = {parent_of(pid) for pid in api_pids}
    candidates = [
        pid
        for pid in _pids()
        if "auth_service" in cmdline(pid)
        and "worker" in cmdline(pid).split()
        and (parent_of(pid) in parents or (mine is not None and pid in mine))
    ]
    for pid in sorted(set(candidates)):
        result.append(measure("auth worker", pid))
    return result


def self_memory(role: str = "bench driver") -> ProcMemory:
    return measure(role, os.getpid())


def reset_peak(pid: int) -> bool:
    """Reset ``VmHWM`` to the current RSS (``echo 5 > /proc/PID/clear_refs``)."""
    try:
        (_PROC / str(pid) / "clear_refs").write_text("5")
    except OSError:
        return False
    return True


def service_processes(
    *,
    services: list[str],
    ports: dict[str, int],
    gateway_port: int | None = None,
    sidecars: tuple[str, ...] = (),
) -> list[tuple[str, int]]:
    """(role, pid) of the nginx workers, each service's API and worker, and sidecars.

    An API holds its port's listening socket; its worker is the sibling started as
    ``python -m <name>_service worker``; a sidecar holds its own port.
    """
    found: list[tuple[str, int]] = []
    if gateway_port:
        for pid in listening_pids(gateway_port):
            command = cmdline(pid)
            if "nginx" in command and "worker process" in command:
                found.append(("nginx worker", pid))
    everyone = _pids()
    for name in services:
        port = ports.get(name)
        api = listening_pids(port) if port else []
        found += [(f"{name} API", pid) for pid in api]
        for key, replica_port in ports.items():
            number = key.removeprefix(f"{name}-")
            if number != key and number.isdigit():
                found += [(f"{name} API {number}", pid) for pid in listening_pids(replica_port)]
        parents = {parent_of(pid) for pid in api}
        for pid in everyone:
            words = cmdline(pid).split()
            if f"{name}_service" in words and "worker" in words and parent_of(pid) in parents:
                found.append((f"{name} worker", pid))
    for sidecar in sidecars:
        port = ports.get(sidecar)
        found += [(f"{sidecar} sidecar", pid) for pid in (listening_pids(port) if port else [])]
    return found


class PeakWatch:
    """Peak RSS of some processes during one phase: reset at the start, read at the end.

    Where the reset is refused (no write access to ``clear_refs``), the peak is the one
    since each process started, and :attr:`note` says so.
    """

    def __init__(self, processes: list[tuple[str, int]], *, include_self: bool = False) -> None:
        self.processes = list(processes)
        results = [reset_peak(pid) for _, pid in self.processes]
        self.reset_ok = all(results) if results else True
        # The driver's own peak is not reset: the run's summary reports it since start.
        self.include_self = include_self

    @property
    def note(self) -> str:
        if self.reset_ok:
            return "VmHWM reset when the phase began"
        return "VmHWM could not be reset (clear_refs): the peak since each process started"

    def read(self) -> list[ProcMemory]:
        found = [measure(role, pid) for role, pid in self.processes]
        if self.include_self:
            found.append(measure("bench driver (peak since it started)", os.getpid()))
        return found
