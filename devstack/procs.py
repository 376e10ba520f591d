"""Child processes of the dev stack: started in their own process group, output to a
log file, stopped with a signal, then killed when they overstay."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devstack.registry import REPO


@dataclass
class Child:
    name: str
    args: list[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    stop_signal: int = signal.SIGTERM
    user: str | None = None
    popen: subprocess.Popen[bytes] | None = None
    reported: bool = False
    stopping: bool = False

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def poll(self) -> int | None:
        return self.popen.poll() if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file (for reporting a child that died)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _signal_group(child: Child, sig: int) -> None:
    if child.popen is None:
        return
    try:
        os.killpg(child.popen.pid, sig)
    except ProcessLookupError:
        pass


@dataclass
class Supervisor:
    """Starts children and stops them all, latest first."""

    log_dir: Path
    children: list[Child] = field(default_factory=list)

    def start(
        self,
        name: str,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stop_signal: int = signal.SIGTERM,
        user: str | None = None,
        append_log: bool = False,
    ) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        child = Child(
            name, list(args), self.log_dir / f"{name}.log", env, stop_signal=stop_signal, user=user
        )
        with child.log_path.open("ab" if append_log else "wb") as log:
            child.popen = subprocess.Popen(  # noqa: S603 - argv built by the stack itself
                child.args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=REPO,
                start_new_session=True,  # own process group: Ctrl-C reaches only us
                user=user,
            )
        self.children.append(child)
        return child

    def newly_dead(self) -> list[Child]:
        """Children that exited on their own since the last call (each reported once)."""
        dead = []
        for child in self.children:
            if not child.reported and not child.stopping and child.poll() is not None:
                child.reported = True
                dead.append(child)
        return dead

    def stop(self, children: Sequence[Child], timeout: float = 10.0) -> list[Child]:
        """Signal ``children`` (their whole process groups), wait, kill the stragglers.

        Returns the children that had to be killed.
        """
        for child in children:
            child.stopping = True
            if child.alive():
                _signal_group(child, child.stop_signal)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(c.alive() for c in children):
            time.sleep(0.05)
        killed = [c for c in children if c.alive()]
        for child in killed:
            _signal_group(child, signal.SIGKILL)
        for child in children:
            if child.popen is not None:
                try:
                    child.popen.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        return killed

    def stop_all(self, timeout: float = 10.0) -> list[Child]:
        """Stop every child still running (signalled latest first, waited for together)."""
        return self.stop(list(reversed(self.children)), timeout)
