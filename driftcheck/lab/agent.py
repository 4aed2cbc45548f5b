"""An ssh-agent for a lab: keys that a client finds only in the agent, never on disk in the clear.

Typical use::

    with Agent(lab) as agent:
        agent.add(lab.encrypted_key("passphrase"), "passphrase")
        subprocess.run(["ssh", ...], env={**os.environ, **agent.env})

The agent listens on a socket in the lab's own directory and runs as a
process the lab records, so ``Lab.down()`` and ``cleanup_stale()`` end it
even when the block never finished; leaving the block ends it by its own pid.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import threading
import time
from pathlib import Path

from driftcheck.lab.commands import one_line, run
from driftcheck.lab.errors import LabError
from driftcheck.lab.lab import Lab

__all__ = ["Agent"]

_COUNTER = itertools.count(1)
_COUNTER_LOCK = threading.Lock()
# ssh-add asks this program for the passphrase (SSH_ASKPASS_REQUIRE=force:
# even without a display or with a terminal); it is handed over in the
# environment, so it never appears in a command line.  It answers once: ssh-add
# asks again after a wrong passphrase, and would do so forever.
_ASKPASS = (
    "#!/bin/sh\n"
    '[ -e "$DCLAB_ASKED" ] && exit 1\n'
    ': > "$DCLAB_ASKED"\n'
    "printf '%s\\n' \"$DCLAB_PASSPHRASE\"\n"
)


class Agent:
    """A running ``ssh-agent`` for ``lab``; use as a context manager."""

    def __init__(self, lab: Lab) -> None:
        """Prepare an agent for ``lab`` (which must be up); it starts on ``__enter__``."""
        with _COUNTER_LOCK:
            number = next(_COUNTER)
        self._lab = lab
        self._dir = lab.private_dir(f"agent-{number}")
        self.socket: Path = self._dir / "agent.sock"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        """What a client's environment needs to use this agent."""
        return {"SSH_AUTH_SOCK": str(self.socket)}

    @property
    def pid(self) -> int:
        """The agent's process id (0 before start and after stop)."""
        return self._process.pid if self._process is not None else 0

    def __enter__(self) -> Agent:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start ssh-agent in the foreground (-D) on :attr:`socket`; wait until it listens."""
        if self._process is not None:
            raise LabError("this agent is already running; use another Agent")
        log = self._dir / "agent.log"
        with open(log, "ab") as out:
            self._process = self._lab.spawn(
                ["ssh-agent", "-D", "-a", str(self.socket)], stdout=out, stderr=out
            )
        deadline = time.monotonic() + 10.0
        while not self.socket.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                text = one_line(log.read_text(errors="replace"))
                raise LabError(f"ssh-agent did not start: {text or 'no output'}")
            time.sleep(0.002)

    def stop(self) -> None:
        """Kill the agent by its own pid (idempotent) and remove its socket."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._process = None
        self.socket.unlink(missing_ok=True)

    def add(self, key_path: Path, passphrase: str) -> None:
        """Load a passphrase-protected private key into the agent, non-interactively."""
        if self._process is None:
            raise LabError("the agent is not running; use it as 'with Agent(lab) as agent:'")
        askpass = self._dir / "askpass"
        if not askpass.exists():
            askpass.write_text(_ASKPASS)
            os.chmod(askpass, 0o700)
        asked = self._dir / "askpass.asked"
        asked.unlink(missing_ok=True)
        env = {
            "DCLAB_ASKED": str(asked),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "SSH_AUTH_SOCK": str(self.socket),
            "SSH_ASKPASS": str(askpass),
            "SSH_ASKPASS_REQUIRE": "force",
            "DCLAB_PASSPHRASE": passphrase,
        }
        run(["ssh-add", str(key_path)], env=env, timeout=30)
