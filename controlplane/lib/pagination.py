"""Pagination for tables that grow to millions of rows.

The API pages with cursors (no OFFSET, no COUNT); the admin counts exactly only
up to a limit and estimates above it.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

from django.core.paginator import Paginator
from django.db import connections
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.pagination import CursorPagination


class NewestFirstPagination(CursorPagination):
    """API lists of records, newest first: ``?page_size=`` up to 200, 50 by default."""

    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


def cursor_page(name: str, item: serializers.Serializer) -> Any:
    """The OpenAPI body of a cursor-paginated list: {next, previous, results}."""
    return inline_serializer(
        name,
        {
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": item,
        },
    )


class EstimatedCountPaginator(Paginator):
    """Exact counts up to ``exact_limit`` rows, planner estimates above.

    Unfiltered: ``pg_class.reltuples`` (what autovacuum last measured).
    Filtered: a count capped at ``exact_limit + 1`` rows (cheap on an index),
    and the planner's row estimate when the cap is hit.
    """

    exact_limit = 10_000

    @cached_property
    def count(self) -> int:
        query = self.object_list
        model = query.model
        connection = connections[query.db]
        if not query.query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                    [model._meta.db_table],
                )
                row = cursor.fetchone()
            estimate = int(row[0]) if row else -1
            if estimate >= self.exact_limit:
                return estimate
        capped = query.order_by()[: self.exact_limit + 1].count()
        if capped <= self.exact_limit:
            return capped
        sql, params = query.order_by().query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0]
        plan = json.loads(plan) if isinstance(plan, str) else plan
        return max(capped, int(plan[0]["Plan"]["Plan Rows"]))
