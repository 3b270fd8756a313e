"""``python -m connector``: operator commands.

  replay       re-queue dead letters from course-activity-updates-poison (all, one provider, or one activity)

Settings come from the environment; a local.settings.json in the current directory is read too (the environment
wins), as `func start` does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from connector.settings import SettingsError, load_settings


def _load_local_settings(path: Path) -> None:
    if path.exists():
        for name, value in json.loads(path.read_text()).get("Values", {}).items():
            os.environ.setdefault(name, str(value))


def _replay(args: argparse.Namespace) -> int:
    from connector.replay import replay

    settings = load_settings()
    result = asyncio.run(
        replay(settings, registration_id=args.registration_id, activity_id=args.activity, dry_run=args.dry_run)
    )
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
    parser.add_argument("--settings", type=Path, default=Path("local.settings.json"), help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)
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
