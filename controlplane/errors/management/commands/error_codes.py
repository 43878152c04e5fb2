"""Print the error-code catalogue as the README's table, or write it into the README."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.errors import catalogue

START, END = "<!-- error-codes:start -->", "<!-- error-codes:end -->"


def table() -> str:
    lines = [
        "| code | status | retry | recovery | where | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for e in catalogue.CATALOGUE:
        lines.append(
            f"| `{e.code}` | {e.status} | {'yes' if e.retryable else 'no'} | {e.recovery} "
            f"| {', '.join(e.where)} | {e.description} |"
        )
    lines += ["", "Recovery:", ""]
    lines += [f"- `{name}`: {text}." for name, text in catalogue.RECOVERIES.items()]
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Print the error-code catalogue (Markdown); --readme writes it into README.md."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--readme", action="store_true", help="rewrite README.md's table")

    def handle(self, *args: Any, readme: bool = False, **options: Any) -> None:
        if not readme:
            self.stdout.write(table())
            return
        path = Path(settings.BASE_DIR) / "README.md"
        text = path.read_text()
        if START not in text or END not in text:
            raise CommandError(f"README.md has no {START} ... {END} section")
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        path.write_text(f"{before}{START}\n{table()}\n{END}{after}")
        self.stdout.write(f"wrote {len(catalogue.CATALOGUE)} codes into {path}")
