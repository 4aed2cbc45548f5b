"""How lab resources are named, and how to recognise them from their names alone.

Every resource a lab creates carries its lab id: ``dclab-<id>-<n>`` network
namespaces, ``/run/driftcheck-lab/dclab-<id>/`` run dirs, ``dclab-<id>``
workdirs.  Cleanup relies on these shapes to find what a crashed lab left
behind even without its state file, so they are defined in one place.
"""

from __future__ import annotations

import posixpath
import re
import secrets
from pathlib import Path

#: Where every lab records what it created (one JSON file per lab).
STATE_DIR = Path("/run/driftcheck-lab")
#: Prefix of every lab network namespace, lab directory and temp workdir.
NETNS_PREFIX = "dclab-"
#: The only address the lab ever listens on or hands out.
LAB_ADDRESS = "127.0.0.1"
#: The bridge in a bastion's network namespace (hosts behind it hang off it).
BASTION_BRIDGE = "dcbr0"
#: The user that lab hosts with a sudo login (LabHostSpec.login) log in as.
LAB_SUDO_USER = "dc"

LAB_ID_PATTERN = r"[0-9a-f]{8}"
_STATE = re.escape(str(STATE_DIR))
#: A lab's run dir (its namespace files and host root mount points live there).
RUN_DIR_RE = re.compile(rf"{_STATE}/{NETNS_PREFIX}({LAB_ID_PATTERN})")
#: A persistent mount/UTS namespace file of one host.
NS_FILE_RE = re.compile(rf"{_STATE}/{NETNS_PREFIX}({LAB_ID_PATTERN})/\d+\.(?:mnt|uts)")
#: A host's network namespace name.
NETNS_RE = re.compile(rf"{NETNS_PREFIX}({LAB_ID_PATTERN})-\d+")
#: What the command line of a lab's socat/nsenter processes contains: a
#: network namespace of the lab, or (a bastion in the machine's network,
#: which enters none) the lab's run dir.
MARKER_RE = re.compile(
    rf"/run/netns/{NETNS_PREFIX}({LAB_ID_PATTERN})-\d+"
    rf"|{_STATE}/{NETNS_PREFIX}({LAB_ID_PATTERN})/"
)

# Directories the lab must never delete, whatever a (possibly corrupt) state
# file says.
_NEVER_REMOVE = frozenset(
    {
        "/",
        "/tmp",
        "/var",
        "/var/tmp",
        "/run",
        "/root",
        "/home",
        "/etc",
        "/usr",
        "/work",
        "/srv",
        "/opt",
        "/mnt",
    }
)


def new_lab_id() -> str:
    """A fresh random lab id (8 hex digits)."""
    return secrets.token_hex(4)


def parse_lab_id(text: str) -> str | None:
    """The lab id in ``text`` (``1a2b3c4d`` or ``dclab-1a2b3c4d``), or None."""
    text = text.removeprefix(NETNS_PREFIX)
    return text if re.fullmatch(LAB_ID_PATTERN, text) else None


def netns_name(lab_id: str, index: int) -> str:
    """Network namespace of host number ``index`` of a lab."""
    return f"{NETNS_PREFIX}{lab_id}-{index}"


def process_marker(lab_id: str) -> str:
    """Text that every socat/nsenter command line of the lab contains."""
    return f"/run/netns/{NETNS_PREFIX}{lab_id}-"


def run_dir(lab_id: str) -> Path:
    """The lab's directory under :data:`STATE_DIR` (short paths for socat's EXEC)."""
    return STATE_DIR / f"{NETNS_PREFIX}{lab_id}"


def state_file(lab_id: str) -> Path:
    """The JSON file recording what the lab created."""
    return STATE_DIR / f"{lab_id}.json"


def safe_to_remove(path: str) -> bool:
    """Only ever delete lab directories, whatever a state file claims."""
    p = posixpath.normpath(path)
    return (
        p.startswith("/")
        and p not in _NEVER_REMOVE
        and len(Path(p).parts) >= 3
        and Path(p).name.startswith(NETNS_PREFIX)
    )
