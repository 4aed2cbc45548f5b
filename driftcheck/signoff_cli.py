"""The release sign-off commands: ``attest``, ``approve``, ``verify`` and
``signoff-report`` (see :mod:`driftcheck.signoff` for what they record).

Registered on the command line's app when :mod:`driftcheck.cli` imports this module.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from driftcheck import service, signoff, sshsig
from driftcheck.cli_common import DbOpt, InventoryOpt, RunOpt, app, err, friendly, load
from driftcheck.collectors import REGISTRY
from driftcheck.errors import DriftcheckError
from driftcheck.model import HostStatus
from driftcheck.output import write_atomically
from driftcheck.printable import printable
from driftcheck.runner import now_iso
from driftcheck.signoff_report import render_html, render_markdown
from driftcheck.storage import Store

BundleArg = Annotated[
    Path, typer.Argument(metavar="FILE", help="The sign-off file made by 'driftcheck attest'.")
]


def _write(bundle: dict[str, Any], path: Path | None) -> None:
    text = json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"
    if path is None:
        typer.echo(text, nl=False)
    else:
        write_atomically(path, text)


@app.command()
@friendly
def attest(
    release: Annotated[str, typer.Option("--release", help="The release this sign-off is for.")],
    inventory: InventoryOpt = Path("inventory.yaml"),
    db: DbOpt = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the sign-off file here.")
    ] = None,
    run: RunOpt = None,
) -> None:
    """Write a parity statement for the latest finished run (in-toto Statement v1,
    in a sign-off bundle for 'approve'); exit status as for 'report'."""
    if not release.strip():
        raise DriftcheckError("--release: give the release's name or version")
    inv = load(inventory)
    store = Store(db, create=False)
    chosen = service.choose_run(inv, store, run)
    snapshots = store.snapshots(chosen.id)
    # The digests and the report are of the same snapshots, read once.
    report = service.run_report(inv, store, chosen, snapshots=snapshots)
    run_info = {"id": chosen.id, "started_at": chosen.started_at, "finished_at": chosen.finished_at}
    stmt = signoff.statement(inv, report, snapshots, REGISTRY, release, run_info, now_iso())
    _write(signoff.new_bundle(stmt), output)
    predicate = stmt["predicate"]
    err(
        f"release {release}: {predicate['result']}; {len(stmt['subject']) - 1} host snapshots "
        f"and the rules in the statement (run {chosen.id})"
        + (f"; written to {output}" if output else "")
    )
    if inv.signoff is None:
        err("warning: the inventory has no signoff: policy; 'verify' will report it as unmet")
    raise typer.Exit(report.exit_code)


@app.command()
@friendly
def approve(
    file: BundleArg,
    key: Annotated[
        Path,
        typer.Option(
            "--key", help="Your SSH key: a private key file, or its .pub with the key in ssh-agent."
        ),
    ],
    name: Annotated[
        str | None,
        typer.Option(
            "--as", help="Your principal, as in allowed_signers [default: the key's comment]."
        ),
    ] = None,
    comment: Annotated[str, typer.Option("--comment", help="Said with the approval.")] = "",
    override: Annotated[
        str | None,
        typer.Option("--override", help="Approve a failed or incomplete statement, saying why."),
    ] = None,
) -> None:
    """Sign the statement with your SSH key (ssh-keygen -Y sign) and add the approval."""
    bundle = signoff.read_bundle(file)
    result = bundle["statement"]["predicate"].get("result")
    if result in ("failed", "incomplete") and not (override and override.strip()):
        raise DriftcheckError(
            f"{file}: the statement is {result}; approving it is refused unless you record "
            "why with --override REASON"
        )
    fingerprint, key_comment = sshsig.fingerprint(key)
    principal = (name or key_comment).strip()
    if not principal:
        raise DriftcheckError(
            f"--key {key}: the key has no comment; say who you are with --as NAME"
        )
    digest = signoff.statement_digest(bundle)
    for existing in bundle["approvals"]:
        signed = existing.get("signed") if isinstance(existing, dict) else None
        earlier = signoff.parse_approval(signed, digest) if isinstance(signed, str) else None
        if isinstance(earlier, signoff.Approval) and earlier.principal == principal:
            raise DriftcheckError(f"{file}: {principal} has approved it already")
    doc = signoff.approval_document(bundle, principal, fingerprint, now_iso(), comment, override)
    bundle["approvals"].append({"signed": doc, "signature": sshsig.sign(key, doc.encode())})
    _write(bundle, file)
    err(
        f"approved as {principal} ({fingerprint}); {len(bundle['approvals'])} approval(s) in {file}"
    )


def _check_signatures(bundle: dict[str, Any], allowed: Path, verdict: signoff.Verdict) -> None:
    digest = signoff.statement_digest(bundle)
    for i, entry in enumerate(bundle["approvals"], 1):
        signed = entry.get("signed") if isinstance(entry, dict) else None
        signature = entry.get("signature") if isinstance(entry, dict) else None
        if not isinstance(signed, str) or not isinstance(signature, str):
            verdict.bad_signatures.append(f"approval {i}: not a signed approval")
            continue
        approval = signoff.parse_approval(signed, digest)
        if isinstance(approval, str):
            verdict.bad_signatures.append(f"approval {i}: {approval}")
            continue
        why = sshsig.verify(allowed, approval.principal, signed.encode(), signature)
        if why:
            verdict.bad_signatures.append(f"approval {i} by {approval.principal}: {why}")
        else:
            verdict.approvals.append(approval)


def _check_hosts(
    bundle: dict[str, Any], inventory: Path, db: str | None, verdict: signoff.Verdict
) -> None:
    """Void and unchecked subjects, from the latest snapshots of the hosts."""
    inv = load(inventory)
    store = Store(db, create=False)
    latest = service.choose_run(inv, store)
    include = dict(inv.include_volatile)
    digests: dict[str, str | None] = {
        name: signoff.snapshot_digest(snap, REGISTRY, include)
        if snap.status is HostStatus.OK
        else None
        for name, snap in store.snapshots(latest.id).items()
    }
    void, unchecked = signoff.void_hosts(bundle["statement"], digests, signoff.rules_digest(inv))
    verdict.void += [f"{v} (run {latest.id}, {latest.started_at})" for v in void]
    verdict.unchecked += unchecked


@app.command()
@friendly
def verify(
    file: BundleArg,
    allowed_signers: Annotated[
        Path,
        typer.Option("--allowed-signers", help="OpenSSH allowed_signers file of the approvers."),
    ],
    inventory: Annotated[
        Path | None,
        typer.Option("--inventory", "-i", help="Also check the hosts still match (needs --db)."),
    ] = None,
    db: DbOpt = None,
) -> None:
    """Check every signature, the sign-off policy and (with -i) that the hosts still
    hash to what was signed. Exit bits: 1 bad signature, 4 policy not met, 8 void
    (changed since sign-off), 16 a host could not be checked."""
    bundle = signoff.read_bundle(file)
    if not allowed_signers.is_file():
        raise DriftcheckError(f"--allowed-signers {allowed_signers}: no such file")
    verdict = signoff.Verdict([], [], [], [], [])
    _check_signatures(bundle, allowed_signers, verdict)
    predicate = bundle["statement"]["predicate"]
    verdict.policy = signoff.policy_gaps(predicate, verdict.approvals, datetime.now(UTC))
    if inventory is not None:
        _check_hosts(bundle, inventory, db, verdict)
    for a in verdict.approvals:
        typer.echo(
            printable(f"approved by {a.principal} at {a.at} ({a.key_fingerprint})", one_line=True)
        )
    for label, lines in (
        ("bad signature", verdict.bad_signatures),
        ("policy", verdict.policy),
        ("void", verdict.void),
        ("not checked", verdict.unchecked),
    ):
        for line in lines:
            typer.echo(printable(f"{label}: {line}", one_line=True))
    state = "valid" if verdict.exit_code == 0 else "NOT valid"
    err(f"release {predicate.get('release')}: sign-off {state} (exit status {verdict.exit_code})")
    raise typer.Exit(verdict.exit_code)


class SignoffFormat(StrEnum):
    """Formats of ``driftcheck signoff-report``."""

    MARKDOWN = "markdown"
    HTML = "html"


@app.command("signoff-report")
@friendly
def signoff_report(
    file: BundleArg,
    fmt: Annotated[SignoffFormat, typer.Option("--format", "-f")] = SignoffFormat.MARKDOWN,
    allowed_signers: Annotated[
        Path | None,
        typer.Option("--allowed-signers", help="Verify each approval's signature as well."),
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
) -> None:
    """The sign-off for a change ticket: release, verdict, evidence, approvers, and
    what the policy still lacks."""
    bundle = signoff.read_bundle(file)
    verdict = signoff.Verdict([], [], [], [], [])
    if allowed_signers is not None:
        _check_signatures(bundle, allowed_signers, verdict)
        approvals, checked = verdict.approvals, True
    else:
        digest = signoff.statement_digest(bundle)
        parsed = [
            signoff.parse_approval(str(e.get("signed", "")), digest) for e in bundle["approvals"]
        ]
        approvals, checked = [a for a in parsed if isinstance(a, signoff.Approval)], False
    gaps = signoff.policy_gaps(bundle["statement"]["predicate"], approvals, datetime.now(UTC))
    render = render_html if fmt is SignoffFormat.HTML else render_markdown
    text = render(bundle, approvals, gaps + verdict.bad_signatures, checked)
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_atomically(output, text)
