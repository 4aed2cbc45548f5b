"""Release sign-off: a parity statement, approvals signed with SSH keys, and their
verification months later.

The statement is an in-toto Statement v1 whose subjects are the digests of every
compared host snapshot (its compared facts in canonical form: no times, no
volatile keys) and of the rules in force, and whose predicate
(:data:`PREDICATE_TYPE`) says what driftcheck found. Approvals travel with it in a
bundle (:data:`BUNDLE`): each is a small JSON document naming the statement by its
SHA-256, the approver, the time, the comment and any override, signed as it is
stored with ``ssh-keygen -Y sign`` in :data:`driftcheck.sshsig.NAMESPACE`.

Everything here but reading and writing the bundle file is pure.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from driftcheck import __version__
from driftcheck.collectors import Collector
from driftcheck.drift import volatile_matcher
from driftcheck.errors import DriftcheckError
from driftcheck.findings import DriftReport, State
from driftcheck.inventory import Inventory
from driftcheck.model import HostSnapshot, SignoffPolicy
from driftcheck.reports.json_report import waiver_json
from driftcheck.storage import canonical_json
from driftcheck.when import parse_iso

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://driftcheck.dev/attestation/parity/v1"
BUNDLE = "driftcheck-signoff/1"
#: The subject name of the rules' digest (hosts are "host/NAME").
RULES_SUBJECT = "driftcheck/rules"


def sha256(data: bytes) -> str:
    """Hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


def snapshot_digest(
    snap: HostSnapshot, collectors: Sequence[Collector], include: Mapping[str, Sequence[str]]
) -> str:
    """The digest of what was compared of one host: its status and, per compared
    collector, the section's status, facts and key errors, volatile keys left out.
    Collection times are not in it, so an unchanged host hashes the same tomorrow."""
    volatile = volatile_matcher(collectors, include)
    sections: dict[str, Any] = {}
    for c in collectors:
        sec = snap.sections.get(c.name)
        if not c.compare or sec is None:
            continue
        skip = volatile[c.name]
        facts = {k: v for k, v in sec.facts.items() if skip is None or not skip.fullmatch(k)}
        sections[c.name] = {"status": sec.status.value, "facts": facts, "errors": sec.errors}
    doc = {
        "host": snap.host,
        "environment": snap.environment,
        "roles": list(snap.roles),
        "status": snap.status.value,
        "sections": sections,
    }
    return sha256(canonical_json(doc))


def rules_digest(inventory: Inventory) -> str:
    """The digest of the rules (ignore, map, expect, waivers) as the inventory writes them."""
    return sha256(canonical_json(inventory.rules_document or {}))


def result_of(report: DriftReport) -> str:
    """passed, passed-with-waivers, failed (any drift) or incomplete."""
    if report.has_drift:
        return "failed"
    if report.incomplete:
        return "incomplete"
    return "passed-with-waivers" if report.counts[State.WAIVED.value] else "passed"


def _policy(policy: SignoffPolicy | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    return {
        "groups": {
            g.name: {"members": list(g.members), "required": g.required} for g in policy.groups
        },
        "allow_waivers": policy.allow_waivers,
        "valid_days": policy.valid_days,
    }


def statement(
    inventory: Inventory,
    report: DriftReport,
    snapshots: Mapping[str, HostSnapshot],
    collectors: Sequence[Collector],
    release: str,
    run: Mapping[str, Any],
    now: str,
) -> dict[str, Any]:
    """The in-toto Statement for ``report`` (see the module docstring)."""
    predicate = {
        "release": release,
        "reference": report.reference,
        "targets": list(report.targets),
        "result": result_of(report),
        "counts": report.counts,
        "compared_keys": report.compared_keys,
        "incomplete_hosts": _incomplete_hosts(report),
        "waivers": [{**waiver_json(w), "findings": n} for w, n in _active_waivers(report).items()],
        "run": dict(run),
        "inventory": report.inventory,
        "policy": _policy(inventory.signoff),
        "driftcheck_version": __version__,
        "created_at": now,
    }
    return {
        "_type": STATEMENT_TYPE,
        "subject": _subjects(inventory, report, snapshots, collectors),
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }


def _subjects(
    inventory: Inventory,
    report: DriftReport,
    snapshots: Mapping[str, HostSnapshot],
    collectors: Sequence[Collector],
) -> list[dict[str, Any]]:
    """A subject per compared host snapshot, by name, then the rules'."""
    include = dict(inventory.include_volatile)
    envs = (report.reference, *report.targets)
    names = sorted(h.name for h in report.hosts if h.environment in envs and h.name in snapshots)
    subjects = [
        {
            "name": f"host/{name}",
            "digest": {"sha256": snapshot_digest(snapshots[name], collectors, include)},
        }
        for name in names
    ]
    subjects.append({"name": RULES_SUBJECT, "digest": {"sha256": rules_digest(inventory)}})
    return subjects


def _incomplete_hosts(report: DriftReport) -> list[dict[str, str]]:
    """Each host whose data is not all known, with why: not collected completely, or
    a section or key of it unknown."""
    out = [{"host": h.name, "reason": h.error} for h in report.uncollected]
    seen = {h.name for h in report.uncollected}
    for f in report.findings:
        if f.state is State.INCOMPLETE:
            out += [{"host": h, "reason": why} for h, why in f.reasons.items() if h not in seen]
    return out


def _active_waivers(report: DriftReport) -> dict[Any, int]:
    out: dict[Any, int] = {}
    for f in report.findings:
        if f.state is State.WAIVED and f.waiver is not None:
            out[f.waiver] = out.get(f.waiver, 0) + 1
    return out


# -- the bundle ------------------------------------------------------------------


def new_bundle(stmt: dict[str, Any]) -> dict[str, Any]:
    """A bundle with no approval yet."""
    return {"bundle": BUNDLE, "statement": stmt, "approvals": []}


def statement_digest(bundle: Mapping[str, Any]) -> str:
    """The SHA-256 of the bundle's statement in canonical form: what approvals name."""
    return sha256(canonical_json(bundle["statement"]))


def read_bundle(path: Path) -> dict[str, Any]:
    """A sign-off bundle from ``path``, checked for its shape (one line if it is not one)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DriftcheckError(f"{path}: cannot read it ({exc.strerror})") from None
    except ValueError as exc:
        raise DriftcheckError(
            f"{path}: not JSON ({exc}); give a file made by 'driftcheck attest'"
        ) from None
    ok = (
        isinstance(data, dict)
        and data.get("bundle") == BUNDLE
        and isinstance(data.get("statement"), dict)
        and data["statement"].get("_type") == STATEMENT_TYPE
        and data["statement"].get("predicateType") == PREDICATE_TYPE
        and isinstance(data.get("approvals"), list)
    )
    if not ok or not isinstance(data, dict):
        raise DriftcheckError(
            f"{path}: not a driftcheck sign-off ({BUNDLE} with an in-toto statement of "
            f"{PREDICATE_TYPE}); give a file made by 'driftcheck attest'"
        )
    return data


def approval_document(
    bundle: Mapping[str, Any],
    principal: str,
    key_fingerprint: str,
    at: str,
    comment: str,
    override: str | None,
) -> str:
    """The exact text an approver signs (and the bundle stores), canonical JSON."""
    doc = {
        "type": "driftcheck-approval/1",
        "statement_sha256": statement_digest(bundle),
        "release": bundle["statement"]["predicate"].get("release"),
        "principal": principal,
        "key_fingerprint": key_fingerprint,
        "at": at,
        "comment": comment,
        "override": override,
    }
    return canonical_json(doc).decode()


# -- verification ------------------------------------------------------------------


@dataclass(frozen=True)
class Approval:
    """One approval as read back from a bundle (its fields, once its signature held)."""

    principal: str
    key_fingerprint: str
    at: str
    comment: str
    override: str | None


@dataclass
class Verdict:
    """What ``driftcheck verify`` found, per failure kind."""

    approvals: list[Approval]
    bad_signatures: list[str]
    policy: list[str]
    void: list[str]
    unchecked: list[str]

    @property
    def exit_code(self) -> int:
        """1 a bad or unknown signature, 4 the policy not met, 8 void (a host changed
        after sign-off), 16 a host could not be checked; 0 valid."""
        return (
            (1 if self.bad_signatures else 0)
            | (4 if self.policy else 0)
            | (8 if self.void else 0)
            | (16 if self.unchecked else 0)
        )


def parse_approval(signed: str, digest: str) -> Approval | str:
    """The approval in ``signed`` text, or why it cannot be one of this statement."""
    try:
        doc = json.loads(signed)
    except ValueError:
        return "its signed text is not JSON"
    if not isinstance(doc, dict) or doc.get("type") != "driftcheck-approval/1":
        return "not a driftcheck approval"
    if doc.get("statement_sha256") != digest:
        return "it approves another statement (or the statement was changed after it)"
    return Approval(
        str(doc.get("principal", "")),
        str(doc.get("key_fingerprint", "")),
        str(doc.get("at", "")),
        str(doc.get("comment", "")),
        doc.get("override") if isinstance(doc.get("override"), str) else None,
    )


def policy_gaps(
    predicate: Mapping[str, Any], approvals: Sequence[Approval], now: datetime
) -> list[str]:
    """What the statement's own sign-off policy still lacks, one line each."""
    policy = predicate.get("policy")
    if not isinstance(policy, dict):
        return ["the statement carries no sign-off policy (add signoff: to the inventory)"]
    result = predicate.get("result")
    gaps = []
    if result == "passed-with-waivers" and not policy.get("allow_waivers", True):
        gaps.append("the policy does not allow approving a passed-with-waivers statement")
    valid = timedelta(days=int(policy.get("valid_days", 7)))
    fresh = []
    for a in approvals:
        when = parse_iso(a.at)
        if when is None or when + valid < now:
            gaps.append(f"approval by {a.principal} at {a.at} expired (valid {valid.days} days)")
        elif result in ("failed", "incomplete") and not a.override:
            gaps.append(f"approval by {a.principal} of a {result} statement has no override")
        else:
            fresh.append(a.principal)
    for name, group in sorted(policy.get("groups", {}).items()):
        signed = sorted({p for p in fresh if p in group.get("members", [])})
        need = int(group.get("required", 1))
        if len(signed) < need:
            who = ", ".join(signed) or "nobody"
            gaps.append(f"group {name}: {len(signed)} of {need} required approvals ({who})")
    return gaps


def void_hosts(
    stmt: Mapping[str, Any], digests: Mapping[str, str | None], rules: str | None
) -> tuple[list[str], list[str]]:
    """(void, unchecked): subjects whose current digest differs from the signed one,
    and hosts that could not be checked (None: not collected completely)."""
    void, unchecked = [], []
    for subject in stmt.get("subject", []):
        name, signed = subject.get("name", ""), subject.get("digest", {}).get("sha256")
        if name == RULES_SUBJECT:
            if rules is not None and rules != signed:
                void.append("the inventory's rules changed since sign-off")
            continue
        host = name.removeprefix("host/")
        if host not in digests:
            unchecked.append(f"{host}: not in the latest run")
        elif digests[host] is None:
            unchecked.append(f"{host}: not collected completely in the latest run")
        elif digests[host] != signed:
            void.append(f"{host}: changed since sign-off")
    return void, unchecked
