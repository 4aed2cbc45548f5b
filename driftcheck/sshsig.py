"""SSH signatures through OpenSSH's own ``ssh-keygen -Y`` (sign, verify,
find-principals), so approvers use the keys and agents they already have and a
signature can be checked by hand with the same binary.

The binary is used rather than reimplementing the SSHSIG format: it handles every
key type, encrypted keys (it asks for the passphrase), keys held by an ssh-agent,
FIDO keys, and ``allowed_signers`` options (``namespaces=``, ``valid-after=``,
``cert-authority``) exactly as the people checking the signature will.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from driftcheck.errors import DriftcheckError

#: The namespace every driftcheck sign-off signature is made in (ssh-keygen -n).
NAMESPACE = "driftcheck-signoff@driftcheck"


def _keygen() -> str:
    path = shutil.which("ssh-keygen")
    if path is None:
        raise DriftcheckError("ssh-keygen not found: install the OpenSSH client (openssh-client)")
    return path


def fingerprint(key: Path) -> tuple[str, str]:
    """(SHA256 fingerprint, comment) of a public or private key file."""
    proc = subprocess.run(
        [_keygen(), "-l", "-E", "sha256", "-f", str(key)],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        why = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "not a key"
        raise DriftcheckError(f"--key {key}: cannot read the key ({why})")
    parts = proc.stdout.split()
    comment = " ".join(parts[2:-1]) if len(parts) > 3 else ""
    return parts[1], comment


def sign(key: Path, message: bytes) -> str:
    """The armored SSH signature of ``message`` by ``key`` (a private key file, or a
    public one whose private half is in the ssh-agent)."""
    proc = subprocess.run(
        [_keygen(), "-Y", "sign", "-q", "-f", str(key), "-n", NAMESPACE],
        input=message,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0 or b"BEGIN SSH SIGNATURE" not in proc.stdout:
        why = proc.stderr.decode(errors="replace").strip().replace("\n", "; ")
        raise DriftcheckError(f"--key {key}: ssh-keygen could not sign ({why or 'no signature'})")
    return proc.stdout.decode()


def verify(allowed_signers: Path, principal: str, message: bytes, signature: str) -> str:
    """ "" when ``signature`` is a good signature of ``message`` by a key that
    ``allowed_signers`` allows for ``principal`` in driftcheck's namespace, else why
    not (ssh-keygen's own words)."""
    with tempfile.TemporaryDirectory(prefix="dc-sig-") as tmp:
        sig = Path(tmp) / "approval.sig"
        sig.write_text(signature)
        proc = subprocess.run(
            [
                _keygen(),
                "-Y",
                "verify",
                "-f",
                str(allowed_signers),
                "-I",
                principal,
                "-n",
                NAMESPACE,
                "-s",
                str(sig),
            ],
            input=message,
            capture_output=True,
            check=False,
        )
    if proc.returncode == 0:
        return ""
    out = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
    return out[-1] if out else f"ssh-keygen -Y verify exited {proc.returncode}"
