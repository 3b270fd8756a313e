"""`python -m connector backfill`: a provider's history onto the update queue, at a pace the fleet and Graph can take.

Three streaming passes over each file (constant memory whatever its size):
1. its content hash: a record's event id is the hash and the record's line (connector.domain.backfill_lines), so the
   same file enqueued twice gives the same ids, and the worker skips the second (a platform's event, Caliper or
   SCORM Cloud, keeps its own id, as its live delivery has it);
2. every record validated as the webhook (or the LRS) validates it, and the message it would enqueue built and its
   size checked; rejected records are printed with the webhook's wording and written to `--report`;
3. unless it is a dry run, or records were rejected (without `--skip-rejected`): the messages onto
   course-activity-updates, no faster than `--rate` and never while the queue holds `--max-queue-depth` messages,
   with a checkpoint beside the file (or in `--checkpoint-dir`) that lets the same command go on where it stopped.
The worker, merge, lifecycle and dead letters are the live callbacks'.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from azure.core.exceptions import AzureError

from connector.app.lrs import statement_envelope
from connector.app.platform_intake import content_id_for, mapped_envelope
from connector.app.replies import first_oversized
from connector.domain.backfill_lines import (
    DESCRIPTIONS,
    FORMATS,
    Checked,
    Context,
    FileFormatError,
    detect,
    event_id,
)
from connector.domain.envelope import MAX_MESSAGE_BYTES, QUEUE_NAME, Envelope, now_iso, utc_iso
from connector.domain.events import EventValidationError, FieldError
from connector.domain.formats.caliper import Completion
from connector.domain.merge import EARLIEST
from connector.ops.check import storage_problem
from connector.ops.progress import Progress, duration
from connector.settings import ProviderSettings, Settings

if TYPE_CHECKING:
    from azure.storage.queue.aio import QueueClient

SOURCE = "backfill"
#: While the queue is full, how often its depth is read again.
DEPTH_POLL_SECONDS = 2.0
#: Messages sent at once; a batch is also at most a quarter of a second's worth at the rate.
MAX_BATCH = 16
SHOWN_REJECTIONS = 50
CHECKPOINT_EVERY_SECONDS = 1.0
_EARLIEST_TIME = utc_iso(EARLIEST.time)
_TOO_LARGE = FieldError("event", "is invalid", f"must fit a queue message ({MAX_MESSAGE_BYTES} bytes at most)")


class BackfillError(Exception):
    """What stops a backfill, in one line (the CLI prints it as an operator error)."""


@dataclass(frozen=True)
class BackfillOptions:
    """The command's options (connector.ops.cli says what each means, and their defaults)."""

    registration_id: str
    files: tuple[Path, ...]
    rate: float
    max_queue_depth: int
    progress_every: float
    dry_run: bool = False
    skip_rejected: bool = False
    report: Path | None = None
    checkpoint_dir: Path | None = None
    restart: bool = False


@dataclass
class FileRun:
    """One file's figures."""

    path: Path
    format: str
    size: int
    modified: int
    """The file's mtime (ns) when it was first read: a file changed meanwhile is not enqueued under the old hash."""
    content_hash: str = ""
    records: int = 0
    accepted: int = 0
    rejected: int = 0
    unchanged: int = 0
    """Accepted, but nothing to enqueue: statements and platforms' events that say nothing about progress."""
    enqueued: int = 0
    earlier: int = 0
    """Enqueued by an earlier run, as its checkpoint says."""

    @property
    def messages(self) -> int:
        return self.accepted - self.unchanged

    def counts(self, *names: str) -> dict[str, int]:
        return {name: getattr(self, name) for name in names}


@dataclass
class BackfillResult:
    files: list[FileRun] = field(default_factory=list)
    stopped: bool = False
    """Records were rejected and --skip-rejected was not given: nothing was enqueued."""
    seconds: float = 0.0

    def total(self, name: str) -> int:
        return sum(getattr(run, name) for run in self.files)


async def backfill(settings: Settings, provider: ProviderSettings, options: BackfillOptions) -> BackfillResult:
    started = time.monotonic()
    context = Context(
        provider.registration_id,
        datetime.now(UTC),
        content_id=content_id_for(provider),
        caliper_completion=cast(Completion, provider.caliper_completion),  # one of the three: checked at start-up
        scorm_failed_in_progress=provider.scorm_failed_in_progress,
    )
    result = BackfillResult([_file_run(path) for path in options.files])
    async with contextlib.AsyncExitStack() as stack:
        queue = None
        if not options.dry_run:
            queue = await stack.enter_async_context(await _queue_ready(settings))
            for run in result.files:
                _writable(_checkpoint_path(run.path, options.checkpoint_dir).parent)
        with _Rejections(options.report) as rejections:
            for run in result.files:
                _hash(run, options)
                _validate(run, context, provider, rejections, options)
        result.stopped = result.total("rejected") > 0 and not options.skip_rejected
        if queue is not None and not result.stopped:
            pace = _Pace(queue, options.rate, options.max_queue_depth)
            try:
                for run in result.files:
                    await _enqueue(run, queue, pace, context, provider, options)
            except AzureError as exc:
                problem = storage_problem(settings, f"send to the queue {QUEUE_NAME}", exc, _FIX).one_line()
                raise BackfillError(f"{problem}; the same command goes on where this one stopped") from None
    result.seconds = time.monotonic() - started
    return result


def summary(result: BackfillResult, options: BackfillOptions) -> list[str]:
    """What the command prints at the end: a line per file, then the totals and what comes next."""
    lines = [
        f"{run.path} ({DESCRIPTIONS[run.format]}): {run.records:,} record(s), {run.accepted:,} accepted, "
        f"{run.rejected:,} rejected" + (f", {run.unchanged:,} changing nothing" if run.unchanged else "")
        + ("" if options.dry_run or result.stopped else f"; {run.enqueued:,} enqueued now")
        + (f", {run.earlier:,} by an earlier run" if run.earlier else "")
        for run in result.files
    ]  # fmt: skip
    messages, rejected = result.total("messages"), result.total("rejected")
    lines.append(
        f"backfill for provider {options.registration_id}: {result.total('records'):,} record(s) in "
        f"{len(result.files)} file(s), {result.total('accepted'):,} accepted, {rejected:,} rejected, "
        f"in {duration(result.seconds)}"
    )
    report = f" ({options.report} lists them all)" if options.report else " (--report FILE lists them all)"
    if options.dry_run:
        stop = f", once the rejected record(s){report} are fixed (or with --skip-rejected)" if result.stopped else ""
        lines.append(f"dry run: nothing enqueued; {messages:,} message(s) would go on {QUEUE_NAME}{stop}")
    elif result.stopped:
        lines.append(
            f"nothing enqueued: {rejected:,} record(s) rejected{report}; fix them and run again, or add "
            f"--skip-rejected to enqueue the {messages:,} message(s) of the accepted ones"
        )
    else:
        lines.append(
            f"{result.total('enqueued'):,} message(s) enqueued on {QUEUE_NAME} now, "
            f"{result.total('earlier'):,} by an earlier run; the worker applies them as it applies live callbacks"
        )
    return lines


# --- pass 1: the content hash ---


def _file_run(path: Path) -> FileRun:
    try:
        with path.open("rb") as stream:
            found = os.fstat(stream.fileno())
            return FileRun(path, detect(stream.read(64 * 1024)), found.st_size, found.st_mtime_ns)
    except OSError as exc:
        raise BackfillError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except FileFormatError as exc:
        raise BackfillError(f"{path}: {exc}") from None


def _unchanged(run: FileRun) -> None:
    found = run.path.stat()
    if (found.st_size, found.st_mtime_ns) != (run.size, run.modified):
        raise BackfillError(f"{run.path}: the file changed while it was read; run the command again")


def _hash(run: FileRun, options: BackfillOptions) -> None:
    digest = hashlib.sha256()
    progress = Progress(f"hashing {run.path.name}", run.size, "B", every=options.progress_every)
    with run.path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
            progress.update(stream.tell())
    progress.close()
    run.content_hash = digest.hexdigest()


# --- pass 2: validation ---


def _records(
    stream: IO[bytes], run: FileRun, context: Context, provider: ProviderSettings
) -> Iterator[tuple[Checked, str | None]]:
    """Each record of the file, with the message it enqueues (None when rejected or changing nothing)."""
    received_at = now_iso()  # one reading of the clock per pass: it costs as much as a record's JSON
    for checked in FORMATS[run.format](stream, context):
        message = _message(checked, run.content_hash, provider, received_at) if checked.changes_something else None
        if message is not None and first_oversized([message]) is not None:
            yield replace(checked, errors=(_TOO_LARGE,)), None
        else:
            yield checked, message


def _message(checked: Checked, content_hash: str, provider: ProviderSettings, received_at: str) -> str | None:
    """The envelope as the webhook (or the LRS, or a platform's endpoint) writes it, `source: "backfill"`; a record
    without a time of its own is stamped merge.EARLIEST's, below every live callback, its line the sequence (later
    lines win ties). A platform's event keeps its own id and time; None when it changes nothing the worker applies."""
    number = checked.number
    if checked.mapped is not None:
        envelope = mapped_envelope(provider, checked.mapped, source=SOURCE, received_at=received_at, sequence=number)
        return envelope.to_json() if envelope is not None else None
    if checked.statement is not None and checked.change is not None:
        return statement_envelope(
            provider, checked.statement, checked.change, event_id=event_id(content_hash, number), sequence=number,
            source=SOURCE,
        ).to_json()  # fmt: skip
    assert checked.event is not None
    return Envelope(
        id=event_id(content_hash, number),
        registration_id=provider.registration_id,
        event=checked.event,
        source=SOURCE,
        event_time=utc_iso(checked.event_time) if checked.event_time else _EARLIEST_TIME,
        sequence=number,
        received_at=received_at,
    ).to_json()


class _Rejections:
    """Rejected records: the first few printed, every one written to the report (JSON Lines) when asked."""

    def __init__(self, report: Path | None) -> None:
        self._path = report
        self._report: IO[str] | None = None
        self._count = 0

    def __enter__(self) -> _Rejections:
        if self._path is not None:
            try:
                self._report = self._path.open("w", encoding="utf-8")
            except OSError as exc:
                raise BackfillError(f"--report {self._path}: cannot write it ({exc.strerror or exc})") from None
        return self

    def __exit__(self, *_: object) -> None:
        if self._report is not None:
            self._report.close()

    def add(self, checked: Checked, run: FileRun, progress: Progress) -> None:
        if self._report is not None:
            self._report.write(json.dumps(checked.report(str(run.path)), ensure_ascii=False) + "\n")
        self._count += 1
        if self._count <= SHOWN_REJECTIONS:
            progress.say(f"{checked.where(str(run.path))}: {EventValidationError(list(checked.errors))}")
        elif self._count == SHOWN_REJECTIONS + 1:
            more = f"the report {self._path}" if self._path else "--report FILE"
            progress.say(f"(more rejected records are not shown: {more} lists every one)")


def _validate(
    run: FileRun, context: Context, provider: ProviderSettings, rejections: _Rejections, options: BackfillOptions
) -> None:
    progress = Progress(f"validating {run.path.name}", run.size, "B", every=options.progress_every)
    shown = ("records", "accepted", "rejected")
    with run.path.open("rb") as stream:
        for checked, message in _records(stream, run, context, provider):
            run.records += 1
            if not checked.accepted:
                run.rejected += 1
                rejections.add(checked, run, progress)
            else:
                run.accepted += 1
                run.unchanged += message is None
            if run.records % 512 == 0:
                progress.update(stream.tell(), run.counts(*shown))
    progress.update(run.size, run.counts(*shown))
    progress.close()


# --- pass 3: the queue ---


async def _queue_ready(settings: Settings) -> QueueClient:
    """The update queue's client, once the queue is known to be there (Azurite: created), failing fast otherwise."""
    from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

    from connector.adapters.storage import may_create_storage, queue_client

    async with queue_client(settings, QUEUE_NAME, retry_total=0) as probe:
        try:
            try:
                await probe.get_queue_properties()
            except ResourceNotFoundError:
                if not may_create_storage(settings):
                    raise BackfillError(
                        f"storage: the queue {QUEUE_NAME} does not exist; deploy the app first (the template "
                        "creates it)"
                    ) from None
                with contextlib.suppress(ResourceExistsError):
                    await probe.create_queue()
        except AzureError as exc:
            problem = storage_problem(settings, f"reach the queue {QUEUE_NAME} in AzureWebJobsStorage", exc, _FIX)
            raise BackfillError(problem.one_line()) from None
    return queue_client(settings, QUEUE_NAME)  # the SDK's retries: a long backfill rides out a transient failure


_FIX = (
    "check AzureWebJobsStorage (locally: is scripts/dev running?); against Azure, provision with "
    "OPERATOR_QUEUE_ACCESS=true, which gives you Storage Queue Data Contributor"
)


def _writable(folder: Path) -> None:
    if not os.access(folder, os.W_OK):
        raise BackfillError(f"{folder}: the checkpoint cannot be written there; name a folder with --checkpoint-dir")


class _Pace:
    """No faster than `rate` messages a second, in batches of at most a quarter second's worth; and never more than
    `max_depth` messages on the queue: its depth is read when the room seen last is used up, then every
    DEPTH_POLL_SECONDS while it is full (live callbacks and throttled retries count too)."""

    def __init__(self, queue: QueueClient, rate: float, max_depth: int) -> None:
        self._queue = queue
        self._rate = rate
        self._max_depth = max_depth
        self._batch = max(1, min(MAX_BATCH, round(rate / 4), max_depth))
        self._next = time.monotonic()
        self._room = 0

    async def allowance(self, waiting: Callable[[int], None]) -> int:
        """How many messages may go next; waits while the queue is full (`waiting` hears the depth once)."""
        told = False
        while self._room <= 0:
            depth = (await self._queue.get_queue_properties()).approximate_message_count or 0
            self._room = self._max_depth - depth
            if self._room <= 0:
                if not told:
                    waiting(depth)
                    told = True
                await asyncio.sleep(DEPTH_POLL_SECONDS)
        return min(self._batch, self._room)

    async def spend(self, count: int) -> None:
        """Waits out `count` messages' share of a second at the rate (after a pause, counted from now)."""
        self._next = max(self._next, time.monotonic()) + count / self._rate
        await asyncio.sleep(self._next - time.monotonic())
        self._room -= count


@dataclass
class _Checkpoint:
    """How far a file's messages are on the queue, for a re-run of the same command (same content, same provider)."""

    path: Path
    run: FileRun
    registration_id: str
    through: int = 0
    """Every message of the records up to this number is on the queue."""
    enqueued: int = 0
    """How many messages that is."""
    complete: bool = False
    saved_at: float = 0.0

    @classmethod
    def load(cls, path: Path, run: FileRun, registration_id: str) -> _Checkpoint:
        fresh = cls(path, run, registration_id)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return fresh
        if not isinstance(data, dict) or (data.get("sha256"), data.get("registrationId")) != (
            run.content_hash,
            registration_id,
        ):
            return fresh  # another content (the file changed) or another provider: from the top
        return replace(
            fresh,
            through=int(data.get("through") or 0),
            enqueued=int(data.get("enqueued") or 0),
            complete=data.get("complete") is True,
        )

    def save(self, *, when_due: bool = False) -> None:
        now = time.monotonic()
        if when_due and now - self.saved_at < CHECKPOINT_EVERY_SECONDS:
            return
        data: dict[str, Any] = {
            "file": str(self.run.path),
            "sha256": self.run.content_hash,
            "registrationId": self.registration_id,
            "through": self.through,
            "enqueued": self.enqueued,
            "complete": self.complete,
            "updatedAt": now_iso(),
        }
        written = self.path.with_name(self.path.name + ".tmp")
        written.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        written.replace(self.path)  # whole or not at all, whenever the process stops
        self.saved_at = now


def _checkpoint_path(path: Path, folder: Path | None) -> Path:
    return (folder or path.parent) / f"{path.name}.backfill-checkpoint.json"


async def _enqueue(
    run: FileRun,
    queue: QueueClient,
    pace: _Pace,
    context: Context,
    provider: ProviderSettings,
    options: BackfillOptions,
) -> None:
    _unchanged(run)
    checkpoint = _Checkpoint.load(_checkpoint_path(run.path, options.checkpoint_dir), run, provider.registration_id)
    if options.restart:
        checkpoint = replace(checkpoint, through=0, enqueued=0, complete=False)
    label, every = f"enqueueing {run.path.name}", options.progress_every
    progress = Progress(label, run.messages, "messages", initial=checkpoint.enqueued, every=every)
    if checkpoint.complete:
        run.earlier = checkpoint.enqueued
        progress.say(f"{run.path}: every message was enqueued by an earlier run ({checkpoint.path}); --restart "
                     "sends them again (the worker skips what it has applied)")  # fmt: skip
        progress.close()
        return

    def waiting(depth: int) -> None:
        progress.say(
            f"waiting: {QUEUE_NAME} holds {depth:,} message(s), --max-queue-depth is {options.max_queue_depth:,}; "
            "going on as the worker drains it",
            sys.stderr,
        )

    def sent() -> None:
        progress.update(run.earlier + run.enqueued, run.counts("enqueued", "earlier"))

    batch: list[tuple[int, str]] = []
    try:
        limit = await pace.allowance(waiting)
        with run.path.open("rb") as stream:
            for checked, message in _records(stream, run, context, provider):
                if message is None:
                    continue
                if checked.number <= checkpoint.through:
                    run.earlier += 1
                    continue
                batch.append((checked.number, message))
                if len(batch) >= limit:
                    await _send(queue, pace, batch, run, checkpoint)
                    batch = []
                    sent()
                    limit = await pace.allowance(waiting)
        if batch:
            await _send(queue, pace, batch, run, checkpoint)
        checkpoint.complete = True
    finally:
        checkpoint.save()
        sent()
        progress.close()


async def _send(
    queue: QueueClient, pace: _Pace, batch: list[tuple[int, str]], run: FileRun, checkpoint: _Checkpoint
) -> None:
    """One batch at once; the checkpoint moves past it only once all of it is on the queue."""
    await pace.spend(len(batch))
    await asyncio.gather(*(queue.send_message(message) for _, message in batch))
    run.enqueued += len(batch)
    checkpoint.through, checkpoint.enqueued = batch[-1][0], checkpoint.enqueued + len(batch)
    checkpoint.save(when_due=True)
