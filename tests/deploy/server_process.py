"""A real policy server in a child process, for the tests (127.0.0.1, a free port)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "data" / "pretrained" / "push_t"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``python -m shortcut_policy.serve`` with ``overrides``; ``url`` once it listens. Its
    output is collected in ``lines`` (the server logs every refused request)."""

    def __init__(self, *overrides: str, port: int = 0) -> None:
        command = [sys.executable, "-m", "shortcut_policy.serve", f"checkpoint={SHIPPED}"]
        command += ["device=cpu", f"port={port}", *overrides]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self.url = None
        for line in self.process.stdout:
            self.lines.append(line)
            found = re.search(r"listening on (ws://\S+)", line)
            if found:
                self.url = found.group(1)
                break
        if self.url is None:
            raise RuntimeError("the server did not start:\n" + "".join(self.lines))
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def log(self) -> str:
        return "".join(self.lines)

    def stop(self) -> int:
        """SIGTERM, then the exit status."""
        self.process.terminate()
        code = self.process.wait(timeout=30)
        self.reader.join(timeout=5)
        return code
