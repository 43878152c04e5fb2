from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.errors import spool
from controlplane.errors.store import replay_spool


class Command(BaseCommand):
    help = (
        "Write error records spooled while the database was down (idempotent; a replay "
        "that is killed resumes where it stopped). --status: only show what waits."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--status", action="store_true", help="show the spool's files, write nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        files = spool.current()
        if options["status"]:
            self._status(files)
            return
        result = replay_spool(files=files)
        if result.busy:
            raise CommandError("another replay is running; try again in a moment")
        self.stdout.write(
            f"{files.path}: {result.inserted} written, {result.duplicates} already present, "
            f"{result.rejected} rejected, {result.corrupt} corrupt lines set aside, "
            f"{result.remaining} still waiting"
        )
        if result.remaining:
            raise CommandError("the database is still unreachable; rows kept for the next replay")

    def _status(self, files: spool.Spool) -> None:
        backlog = files.backlog()
        self.stdout.write(
            f"{files.path}: {files.pending_count()} rows waiting ({backlog.bytes} bytes "
            f"in {backlog.files} files; {backlog.disk_bytes} bytes on disk)"
        )
        for claimed in files.claimed():
            self.stdout.write(
                f"  claimed {claimed.path.name}: replayed up to byte {claimed.offset()} "
                f"of {claimed.size()}"
            )
        for suffix, what in ((".rejected", "refused by the database"), (".corrupt", "not rows")):
            aside = files.path.with_name(files.path.name + suffix)
            if aside.exists():
                self.stdout.write(f"  {aside}: {aside.stat().st_size} bytes set aside ({what})")
