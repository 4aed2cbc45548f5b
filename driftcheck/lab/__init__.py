"""Namespace test lab: real SSH hosts on one machine, built from Linux namespaces.

Each lab host is a genuine OpenSSH server that a client reaches on
``127.0.0.1:PORT``, with its own network namespace (per-host ``net.*``
sysctls), hostname, host key and overlay root over the real ``/`` (or over
the root tree of another Debian release, ``LabHostSpec(..., release="trixie")``)
in which files, modes, owners and Debian packages can differ from the real
machine, and its own view of the shared kernel's command line and module list
(``kernel_state``; see :mod:`driftcheck.lab.host`).  Typical use::

    with Lab() as lab:
        lab.up([LabHostSpec("prod-web1", "production"),
                LabHostSpec("stg-web1", "staging", sysctls={"net.core.somaxconn": "1024"},
                            packages={"hello": available_versions("hello")[0]})])
        lab.write_inventory(path)
        ...

or, for a lab that outlives the process (``driftcheck lab up``)::

    lab = Lab(workdir, detached=True)
    lab.up(load_specs(Path("lab.yaml")))
    ...                       # later, from any process:
    list_labs(); stop_detached(lab.lab_id)

Layout: overlay upper/work dirs, keys, known_hosts and logs live in the
workdir (``WORKDIR/dclab-<id>/``); the namespace files and the hosts' root
mount points live in ``/run/driftcheck-lab/dclab-<id>/`` because socat
truncates its EXEC argument at 512 bytes, so those paths must stay short.
Everything the lab creates is recorded in a state file under
:data:`STATE_DIR` *before* it is created, so that :func:`cleanup_stale` can
remove the leftovers of a lab whose process died without tearing down.

Hosts can also be reached as production has them: through a sudo user
(``login="sudo"``, ``"sudo-password"``, ``"sudo-requiretty"``), behind a
bastion (``bastion=True`` / ``behind="NAME"``), with a key held only in an
ssh-agent (``driftcheck.lab.agent.Agent``, ``Lab.encrypted_key``), or stalling after the
banner or in authentication (``fault="banner_stall"`` / ``"auth_stall"``).

Modules: ``spec`` (what a host looks like, validation), ``agent`` (ssh-agent), ``specfile`` (YAML
specs), ``lab`` (the Lab class), ``host`` (building one host), ``runtime``
(a built host), ``provision`` (keys, /root, files), ``packages`` (apt
versions, the .deb cache, dpkg inside a host), ``releases`` (root trees of
other Debian releases, built by debootstrap and cached), ``state`` (state files),
``registry`` (listing, stopping and cleaning up labs), ``teardown``,
``system`` (/proc, mounts, ports), ``commands``, ``names``, ``errors``.  The
names below are the public interface; everything else may change.

Needs root and the Debian packages openssh-server, openssh-client, socat,
iproute2, util-linux, mount, procps and coreutils (and apt/dpkg for packages,
debootstrap for hosts of another release).
"""

from __future__ import annotations

from driftcheck.lab.errors import LabError, require_root
from driftcheck.lab.lab import Lab
from driftcheck.lab.names import LAB_ADDRESS, NETNS_PREFIX, STATE_DIR
from driftcheck.lab.packages import DEB_CACHE, available_versions, installed_version
from driftcheck.lab.registry import LabInfo, cleanup_stale, list_labs, stop_detached
from driftcheck.lab.spec import Fault, LabHost, LabHostSpec
from driftcheck.lab.specfile import load_specs

__all__ = [
    "DEB_CACHE",
    "LAB_ADDRESS",
    "NETNS_PREFIX",
    "STATE_DIR",
    "Fault",
    "Lab",
    "LabError",
    "LabHost",
    "LabHostSpec",
    "LabInfo",
    "available_versions",
    "cleanup_stale",
    "installed_version",
    "list_labs",
    "load_specs",
    "require_root",
    "stop_detached",
]
