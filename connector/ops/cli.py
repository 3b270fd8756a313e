"""``python -m connector``: operator commands.

  new-secret          print a new webhook secret (whsec_...), or with --xapi, --caliper, --scorm-cloud an LRS secret,
                      a Caliper API key, a SCORM Cloud postback password, for a provider
  check               verify a deployment: settings, storage, a Graph token, each provider in Graph
  grant-permissions   grant the managed identity its Microsoft Graph application roles (idempotent)
  replay              re-queue dead letters from course-activity-updates-poison
  backfill            validate a provider's history files, then put them on the update queue at a bounded pace
  status              list the activities the connector tracks for a provider (CSV or JSON), e.g. the failed ones

Settings come from the environment. `--settings local.settings.json` reads that file's Values too (the environment
wins), as `func start` does: for local development only; against Azure, leave it out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from connector.settings import ProviderSettings, Settings, SettingsError, load_settings


class CommandError(Exception):
    """What went wrong and how to fix it, in one line: printed without a traceback, exit code 1."""


#: Backfill's pace: about what one instance applies in a second, and at most about 15 s of one instance's work waiting.
DEFAULT_RATE = 50.0
DEFAULT_MAX_QUEUE_DEPTH = 1000
DEFAULT_PROGRESS_EVERY = 10.0
#: What the status of an activity can be (connector.app.apply_update writes them).
_STATES = ("applied", "pending", "throttled", "retrying", "failed")

_GRANTOR = " as someone holding AppRoleAssignment.ReadWrite.All, e.g. a Privileged Role Administrator"

_REPLAY_FIX = (
    "check AzureWebJobsStorage (locally: is scripts/dev running?); against Azure, provision with "
    "OPERATOR_QUEUE_ACCESS=true, which gives you Storage Queue Data Contributor"
)


def _load_local_settings(path: Path | None) -> None:
    if path is None:
        return
    try:
        values = json.loads(path.read_text())["Values"]
        pairs = [(str(name), str(value)) for name, value in values.items()]
    except OSError as exc:
        raise SettingsError("--settings", f"cannot read {path} ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise SettingsError("--settings", f"{path} is not valid JSON ({exc})") from None
    except (KeyError, TypeError, AttributeError):
        raise SettingsError("--settings", f'{path} has no "Values" object, as local.settings.json has') from None
    for name, value in pairs:
        os.environ.setdefault(name, value)


def _new_secret(args: argparse.Namespace) -> int:
    from connector.domain.signatures import new_secret

    if args.xapi:  # an LRS client sends it as an HTTP Basic password: URL-safe text, 32 random bytes
        secret = secrets.token_urlsafe(32)
        entry: dict[str, object] = {"xapiCredentials": [{"key": args.xapi_key, "secret": secret}]}
    elif args.caliper:  # a Caliper sensor's API key, sent as its Authorization header
        secret = secrets.token_urlsafe(32)
        entry = {"caliperKeys": [secret]}
    elif args.scorm_cloud:  # SCORM Cloud's postback password (form field or HTTP Basic)
        secret = secrets.token_urlsafe(32)
        entry = {"scormCloudCredentials": [{"userName": args.user_name, "password": secret}]}
    else:
        secret = new_secret()
        entry = {"webhookSecrets": [secret]}
    if not args.registration_id:
        print(secret)
        return 0
    providers = json.dumps({args.registration_id: entry})
    load_settings({"CONNECTOR_PROVIDERS": providers})  # read as the app will: a bad id or key is named, not printed
    print(providers)
    return 0


def _check(args: argparse.Namespace) -> int:
    from connector.ops.check import run_checks

    findings = asyncio.run(run_checks())
    for finding in findings:
        print(finding)
    failed = sum(f.level == "fail" for f in findings)
    print(f"{failed} problem(s) found" if failed else "all checks passed")
    return 1 if failed else 0


def _grant_permissions(args: argparse.Namespace) -> int:
    import httpx
    from azure.core.exceptions import AzureError

    from connector.adapters.graph import GraphGateway
    from connector.adapters.identity import create_credential
    from connector.domain.failures import GraphFailure
    from connector.ops.check import graph_answered, no_token
    from connector.ops.permissions import grant_permissions, roles_needed

    settings = load_settings()
    home = [p for p in settings.providers.values() if p.tenant_id is None]  # other tenants' roles: their consent
    roles = roles_needed(args.create_missing or any(p.create_missing for p in home))

    async def run() -> int:
        gateway = GraphGateway(settings, create_credential(settings))
        try:
            result = await grant_permissions(gateway, args.principal_id, roles)
        except GraphFailure as failure:
            fix = f"; fix: sign in (az login / azd auth login){_GRANTOR}" if failure.status in (401, 403) else ""
            raise CommandError(f"{graph_answered(failure)}{fix}") from None
        except AzureError as exc:  # from the credential: no login, or no managed identity endpoint
            raise CommandError(no_token(settings, "graph", settings.graph_scope, exc, _GRANTOR).one_line()) from None
        except httpx.HTTPError as exc:
            raise CommandError(f"graph: cannot reach {settings.graph_base_url}: {exc}") from None
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

    from connector.ops.check import storage_problem
    from connector.ops.replay import replay

    settings = load_settings()
    try:
        result = asyncio.run(
            replay(settings, registration_id=args.registration_id, activity_id=args.activity, dry_run=args.dry_run)
        )
    except AzureError as exc:
        problem = storage_problem(settings, "reach the storage account in AzureWebJobsStorage", exc, _REPLAY_FIX)
        raise CommandError(problem.one_line()) from None
    if result.state_problem and args.activity:
        print(
            f"warning: the activity state could not be read ({result.state_problem}): --activity matched "
            "dead letters by the id as given only",
            file=sys.stderr,
        )
    for dead_letter in result.listed:
        print(dead_letter)
    verb = "would move" if args.dry_run else "moved"
    print(
        f"{verb} {result.moved} message(s) from course-activity-updates-poison to course-activity-updates; "
        f"{result.kept} left (other providers or activities), {result.unreadable} unreadable left in place"
    )
    return 0


def _provider(settings: Settings, registration_id: str) -> ProviderSettings:
    provider = settings.provider(registration_id)
    if provider is None:
        raise SettingsError("--registration-id", f"no provider {registration_id} is configured in CONNECTOR_PROVIDERS")
    return provider


def _backfill(args: argparse.Namespace) -> int:
    from connector.ops.backfill import BackfillError, BackfillOptions, backfill, summary

    settings = load_settings()
    provider = _provider(settings, args.registration_id)
    options = BackfillOptions(
        registration_id=provider.registration_id,
        files=tuple(args.files),
        dry_run=args.dry_run,
        skip_rejected=args.skip_rejected,
        report=args.report,
        checkpoint_dir=args.checkpoint_dir,
        restart=args.restart,
        rate=args.rate,
        max_queue_depth=args.max_queue_depth,
        progress_every=args.progress_every,
    )
    if not args.dry_run:
        settings.require_storage()  # a missing AzureWebJobsStorage is named before the files are read
    try:
        result = asyncio.run(backfill(settings, provider, options))
    except BackfillError as exc:
        raise CommandError(str(exc)) from None
    print("\n".join(summary(result, options)))
    return 1 if result.total("rejected") and not args.skip_rejected else 0


def _status(args: argparse.Namespace) -> int:
    from azure.core.exceptions import AzureError

    from connector.adapters.activity_store import TABLE_NAME, StateStore
    from connector.adapters.storage import table_client
    from connector.ops.check import storage_problem
    from connector.ops.status_export import export, tracked

    settings = load_settings()

    async def run() -> int:
        store = StateStore(table_client(settings, TABLE_NAME), create=False)
        try:
            return await export(tracked(store, args.registration_id, args.state), args.format, sys.stdout)
        finally:
            await store.close()

    try:
        count = asyncio.run(run())
    except AzureError as exc:
        doing = f"read the table {TABLE_NAME} in AzureWebJobsStorage"
        fix = "check AzureWebJobsStorage (locally: is scripts/dev running?); against Azure, you need Storage Table "
        fix += "Data Reader on the account"
        raise CommandError(storage_problem(settings, doing, exc, fix).one_line()) from None
    which = f" in state {args.state}" if args.state else ""
    unknown = "" if settings.provider(args.registration_id) else " (a provider not in CONNECTOR_PROVIDERS)"
    print(f"{count:,} activities of provider {args.registration_id}{unknown}{which}", file=sys.stderr)
    return 0


def _reconcile(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from azure.core.exceptions import AzureError

    from connector import bootstrap
    from connector.app.reconcile import reconcile_now
    from connector.ops.check import storage_problem

    settings = load_settings()
    configured = [provider.registration_id for provider in settings.providers.values()]
    if args.registration_id and settings.provider(args.registration_id) is None:  # whose tenant would it read?
        raise CommandError(f"--registration-id: {args.registration_id!r} is not a provider in CONNECTOR_PROVIDERS")
    registration_ids = [args.registration_id] if args.registration_id else configured

    async def run() -> dict[str, Any]:
        parts = bootstrap.Parts(settings)
        try:
            return dict(await reconcile_now(parts.reconciler, registration_ids, args.since, lambda: datetime.now(UTC)))
        finally:
            await parts.close()

    try:
        tallies = asyncio.run(run())
    except AzureError as exc:
        fix = "check AzureWebJobsStorage (locally: is scripts/dev running?); against Azure, you need Storage Table "
        fix += "Data Contributor and Storage Queue Data Message Sender on the account"
        raise CommandError(storage_problem(settings, "reconcile", exc, fix).one_line()) from None
    for registration_id, tally in tallies.items():
        counts = tally.as_dict()
        print(
            f"provider {registration_id}: checked {counts['checked']}, agreeing {counts['agreeing']}, corrected "
            f"{counts['corrected']}, missing in Graph {counts['missing']}, failed {counts['failed']}"
        )
    print("corrections go through course-activity-updates; the worker applies them at the provider's pace")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m connector", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--settings", type=Path, help="also read this local.settings.json (local development; the environment wins)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    secret = _add_new_secret(commands)
    check = commands.add_parser("check", help="verify a deployment and say how to fix what is wrong")
    check.set_defaults(run=_check)
    _add_grant_permissions(commands)
    _add_replay(commands)
    _add_backfill(commands)
    _add_reconcile(commands)
    _add_status(commands)

    args = parser.parse_args(argv)
    if args.command == "new-secret" and bool(args.xapi_key) != bool(args.xapi and args.registration_id):
        secret.error("--xapi --registration-id needs --xapi-key (the LRS key the secret goes with), and only they do")
    # The commands report what went wrong themselves; the SDKs' own warnings (a failed credential chain) would
    # only repeat it at length.
    logging.basicConfig(level=logging.ERROR)
    try:
        _load_local_settings(args.settings)
        return int(args.run(args))
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; a backfill goes on where it stopped when run again", file=sys.stderr)
        return 130


def _add_new_secret(commands: Any) -> argparse.ArgumentParser:
    secret: argparse.ArgumentParser = commands.add_parser(
        "new-secret", help="print a new webhook secret, or an LRS secret, Caliper key or SCORM Cloud password"
    )
    secret.add_argument("--registration-id", help="print a CONNECTOR_PROVIDERS entry for this provider instead")
    kind = secret.add_mutually_exclusive_group()
    kind.add_argument("--xapi", action="store_true", help="an LRS secret for xapiCredentials instead")
    kind.add_argument("--caliper", action="store_true", help="a Caliper API key for caliperKeys instead")
    kind.add_argument(
        "--scorm-cloud", action="store_true", help="a SCORM Cloud postback password for scormCloudCredentials instead"
    )
    secret.add_argument("--xapi-key", help="with --xapi --registration-id: the LRS key (HTTP Basic user)")
    secret.add_argument(
        "--user-name", default="viva-learning", help="with --scorm-cloud: the postback's user name (viva-learning)"
    )
    secret.set_defaults(run=_new_secret)
    return secret


def _add_grant_permissions(commands: Any) -> None:
    grant = commands.add_parser("grant-permissions", help="grant the identity its Microsoft Graph roles")
    grant.add_argument(
        "--principal-id", required=True, type=_guid, help="object id of the managed identity's service principal"
    )
    grant.add_argument(
        "--create-missing",
        action="store_true",
        help="also User.Read.All and LearningContent.Read.All (implied when a provider sets createMissing)",
    )
    grant.set_defaults(run=_grant_permissions)


def _add_replay(commands: Any) -> None:
    replay = commands.add_parser("replay", help="re-queue dead letters after their cause is fixed")
    replay.add_argument("--registration-id", help="only this provider's messages")
    replay.add_argument("--activity", help="only this activity's (external id or Graph id)")
    replay.add_argument("--dry-run", action="store_true", help="list what would move (activity, reason), move nothing")
    replay.set_defaults(run=_replay)


def _add_reconcile(commands: Any) -> None:
    reconcile = commands.add_parser(
        "reconcile", help="read Graph for the tracked activities and put right what differs (through the queue)"
    )
    reconcile.add_argument("--registration-id", help="only this provider (default: every provider)")
    reconcile.add_argument(
        "--since", type=_positive(float), metavar="DAYS", help="only activities with an attempt in the last DAYS days"
    )
    reconcile.set_defaults(run=_reconcile)


def _add_status(commands: Any) -> None:
    status = commands.add_parser(
        "status",
        help="list the activities the connector tracks for a provider, as CSV or JSON",
        description="Lists the activities of a provider from the connector's state (table courseactivitystate): "
        "ids, state, when Graph last accepted an update, the last error. Rows are written as they are read.",
    )
    status.add_argument("--registration-id", required=True, help="the provider")
    status.add_argument("--state", choices=_STATES, help="only the activities in this state, e.g. failed")
    status.add_argument(
        "--format",
        choices=("csv", "jsonl", "json"),
        default="csv",
        help="csv (the default: a header row, one activity per row, for a spreadsheet), jsonl (one JSON object per "
        "line) or json (one JSON array); the JSON has what the status endpoint answers",
    )
    status.set_defaults(run=_status)


def _add_backfill(commands: Any) -> None:
    backfill = commands.add_parser(
        "backfill",
        help="validate history files, then enqueue them at a bounded pace",
        description="Validates every record of the files (JSON Lines of native events, CSV with a header row of "
        "property names, or xAPI statements as a JSON array or one per line; told apart by their content), prints "
        "each rejected one with the webhook's wording, then puts them on course-activity-updates for the worker. "
        "Enqueueing a file twice changes nothing: a record's event id is the file's content hash and its line.",
    )
    backfill.add_argument("--registration-id", required=True, help="the provider the history is for")
    backfill.add_argument("files", metavar="FILE", nargs="+", type=Path, help="history files, read in this order")
    backfill.add_argument("--dry-run", action="store_true", help="validate and print the summary, enqueue nothing")
    backfill.add_argument("--report", type=Path, metavar="FILE", help="write each rejected record to FILE (JSON Lines)")
    backfill.add_argument(
        "--skip-rejected",
        action="store_true",
        help="enqueue the accepted records even though some were rejected (without it, any rejection enqueues nothing)",
    )
    backfill.add_argument(
        "--rate",
        type=_positive(float),
        default=DEFAULT_RATE,
        metavar="N",
        help=f"messages put on the queue per second at most (default {DEFAULT_RATE:g}, {DEFAULT_RATE * 3600:,.0f} an "
        "hour): the pace Graph sees once the fleet is busy; stay within what Graph allows the app for the tenant",
    )
    backfill.add_argument(
        "--max-queue-depth",
        type=_positive(int),
        default=DEFAULT_MAX_QUEUE_DEPTH,
        metavar="N",
        help=f"wait while course-activity-updates holds N messages or more (default {DEFAULT_MAX_QUEUE_DEPTH:,}), "
        "live callbacks and throttled retries included: history never piles up on the queue, and a live callback "
        "waits behind at most N messages. The depth is read again when the room seen last is used up",
    )
    backfill.add_argument(
        "--checkpoint-dir",
        type=Path,
        metavar="DIR",
        help="where each file's checkpoint (FILE.backfill-checkpoint.json) goes; default: beside the file",
    )
    backfill.add_argument(
        "--restart", action="store_true", help="ignore the checkpoints: enqueue every record again (duplicates)"
    )
    backfill.add_argument(
        "--progress-every",
        type=float,
        default=DEFAULT_PROGRESS_EVERY,
        metavar="SECONDS",
        help=f"when not on a terminal, print a progress line this often (default {DEFAULT_PROGRESS_EVERY:g})",
    )
    backfill.set_defaults(run=_backfill)


def _positive(kind: type[float] | type[int]) -> Any:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
        return value

    return parse


def _guid(text: str) -> str:
    from uuid import UUID

    try:
        return str(UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a GUID (the service principal's object id)") from None


if __name__ == "__main__":
    sys.exit(main())
