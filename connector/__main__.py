"""``python -m connector``: operator commands.

  new-secret          print a new webhook secret (whsec_...) for a provider
  check               verify a deployment: settings, storage, a Graph token, each provider in Graph
  grant-permissions   grant the managed identity its Microsoft Graph application roles (idempotent)
  replay              re-queue dead letters from course-activity-updates-poison

Settings come from the environment. `--settings local.settings.json` reads that file's Values too (the environment
wins), as `func start` does: for local development only; against Azure, leave it out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from connector.settings import SettingsError, load_settings


def _load_local_settings(path: Path | None) -> None:
    if path is None:
        return
    if not path.exists():
        raise SystemExit(f"error: --settings {path}: no such file")
    for name, value in json.loads(path.read_text()).get("Values", {}).items():
        os.environ.setdefault(name, str(value))


def _new_secret(args: argparse.Namespace) -> int:
    from connector.signatures import new_secret

    secret = new_secret()
    if args.registration_id:
        print(json.dumps({args.registration_id: {"webhookSecrets": [secret]}}))
    else:
        print(secret)
    return 0


def _check(args: argparse.Namespace) -> int:
    from connector.check import run_checks

    findings = asyncio.run(run_checks())
    for finding in findings:
        print(finding)
    failed = sum(f.level == "fail" for f in findings)
    print(f"{failed} problem(s) found" if failed else "all checks passed")
    return 1 if failed else 0


def _grant_permissions(args: argparse.Namespace) -> int:
    from connector.graph import GraphFailure, GraphGateway
    from connector.identity import create_credential
    from connector.permissions import grant_permissions, roles_needed

    settings = load_settings()
    roles = roles_needed(settings, args.create_missing)

    async def run() -> int:
        gateway = GraphGateway(settings, create_credential(settings))
        try:
            result = await grant_permissions(gateway, args.principal_id, roles)
        except GraphFailure as failure:
            print(f"error: Graph answered {failure} (request-id {failure.request_id})", file=sys.stderr)
            if failure.status in (401, 403):
                print(
                    "fix: sign in (az login / azd auth login) as someone holding AppRoleAssignment.ReadWrite.All, "
                    "e.g. a Privileged Role Administrator",
                    file=sys.stderr,
                )
            return 1
        finally:
            await gateway.close()
        for role in result.granted:
            print(f"granted         {role}")
        for role in result.existing:
            print(f"already granted {role}")
        print(
            f"{len(result.granted)} granted, {len(result.existing)} already in place, for principal {args.principal_id}"
        )
        return 0

    return asyncio.run(run())


def _replay(args: argparse.Namespace) -> int:
    from azure.core.exceptions import AzureError

    from connector.replay import replay

    try:
        result = asyncio.run(
            replay(
                load_settings(), registration_id=args.registration_id, activity_id=args.activity, dry_run=args.dry_run
            )
        )
    except AzureError as exc:
        from connector.check import first_line

        print(f"error: cannot reach the storage account in AzureWebJobsStorage: {first_line(exc)}", file=sys.stderr)
        return 1
    verb = "would move" if args.dry_run else "moved"
    print(
        f"{verb} {result.moved} message(s) from course-activity-updates-poison to course-activity-updates; "
        f"{result.kept} left (other providers or activities), {result.unreadable} unreadable left in place"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m connector", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--settings", type=Path, help="also read this local.settings.json (local development; the environment wins)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    secret = commands.add_parser("new-secret", help="print a new webhook secret")
    secret.add_argument("--registration-id", help="print a CONNECTOR_PROVIDERS entry for this provider instead")
    secret.set_defaults(run=_new_secret)

    check = commands.add_parser("check", help="verify a deployment and say how to fix what is wrong")
    check.set_defaults(run=_check)

    grant = commands.add_parser("grant-permissions", help="grant the identity its Microsoft Graph roles")
    grant.add_argument("--principal-id", required=True, help="object id of the managed identity's service principal")
    grant.add_argument(
        "--create-missing",
        action="store_true",
        help="also User.Read.All and LearningContent.Read.All (implied when a provider sets createMissing)",
    )
    grant.set_defaults(run=_grant_permissions)

    replay = commands.add_parser("replay", help="re-queue dead letters after their cause is fixed")
    replay.add_argument("--registration-id", help="only this provider's messages")
    replay.add_argument("--activity", help="only this activity's (external id or Graph id)")
    replay.add_argument("--dry-run", action="store_true", help="count what would move, move nothing")
    replay.set_defaults(run=_replay)

    args = parser.parse_args(argv)
    _load_local_settings(args.settings)
    try:
        return args.run(args)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
