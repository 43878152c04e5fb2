from __future__ import annotations

from io import StringIO
from typing import Any

from django.core.management import call_command

from jobs.models import Job
from lookups.models import MicroService


def test_backfill_fills_what_it_can_and_a_rerun_is_a_no_op(clean_jobs: None, lookups: Any) -> None:
    services = MicroService.objects.bulk_create(MicroService(slug=f"svc-{n}") for n in range(20))
    slugs = [s.slug for s in services] + ["gone-1", "gone-2"]
    Job.objects.bulk_create(
        Job(kind="demo.sleep", micro_id=slugs[n % len(slugs)]) for n in range(3000)
    )
    Job.objects.bulk_create(Job(kind="demo.sleep") for _ in range(50))  # no micro_id: untouched
    out = StringIO()
    call_command("backfill_micro_uuids", "--batch-size", "400", stdout=out)
    text = out.getvalue()
    unresolved = sum(1 for n in range(3000) if slugs[n % len(slugs)].startswith("gone"))
    assert f"Examined 3000, filled {3000 - unresolved}, still unresolved {unresolved}." in text
    assert "400/3000 jobs examined" in text
    assert "unresolved: gone-1" in text
    by_slug = dict(MicroService.objects.values_list("slug", "uuid"))
    for job in Job.objects.exclude(micro_id="").exclude(micro_id__startswith="gone")[:200]:
        assert job.micro_uuid == by_slug[job.micro_id]

    again = StringIO()
    call_command("backfill_micro_uuids", stdout=again)
    assert f"Examined {unresolved}, filled 0, still unresolved {unresolved}." in again.getvalue()
