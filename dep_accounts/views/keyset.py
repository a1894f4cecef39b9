"""Keyset pagination for long lists: a page starts after (or ends before) the row its link
names, so page 900 reads as few rows as page 1; an OFFSET would read and drop 89,900 first.

The links carry the key of the row they continue from and the number of the page they lead
to. A page number typed into the address bar still works, with an OFFSET: cheap near the
start, where people type them. The count, when the caller has a cheap one, gives "of N".
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.http import QueryDict

SEPARATOR = "~"


@dataclass(frozen=True)
class Key:
    """A row's place in the order: its sort value, then its id for ties."""

    value: str
    pk: int

    def __str__(self) -> str:
        return f"{self.value}{SEPARATOR}{self.pk}"

    @classmethod
    def parse(cls, text: str | None) -> Key | None:
        value, _, pk = (text or "").rpartition(SEPARATOR)
        return cls(value, int(pk)) if pk.isdigit() and value else None


def _number(text: str | None) -> int:
    return int(text) if text and text.isdigit() and int(text) > 0 else 1


@dataclass
class KeysetPage:
    """One page of a list ordered by (`order_field`, id), and the pager's links."""

    object_list: list
    number: int
    per_page: int
    count: int
    has_previous: bool
    has_next: bool
    query: QueryDict
    order_field: str

    def __iter__(self):
        return iter(self.object_list)

    @property
    def num_pages(self) -> int:
        return max((self.count + self.per_page - 1) // self.per_page, 1)

    @property
    def start_index(self) -> int:
        return (self.number - 1) * self.per_page + 1 if self.object_list else 0

    @property
    def end_index(self) -> int:
        return self.start_index + len(self.object_list) - 1 if self.object_list else 0

    def _link(self, direction: str, row, number: int) -> str:
        query = self.query.copy()
        for name in ("after", "before", "page"):
            query.pop(name, None)
        query[direction] = str(Key(getattr(row, self.order_field), row.pk))
        query["page"] = str(number)
        return query.urlencode()

    @property
    def previous_query(self) -> str:
        return self._link("before", self.object_list[0], self.number - 1)

    @property
    def next_query(self) -> str:
        return self._link("after", self.object_list[-1], self.number + 1)


def keyset_page(
    rows: QuerySet, query: QueryDict, *, order_field: str, per_page: int, count: int
) -> KeysetPage:
    """The page `query` asks for: after or before a key, or at a page number."""
    after, before = Key.parse(query.get("after")), Key.parse(query.get("before"))
    number = _number(query.get("page"))
    ascending = rows.order_by(order_field, "pk")
    if before is not None:
        # The plain bound gives the index where to start; the OR alone would scan from the end.
        earlier = Q(**{f"{order_field}__lte": before.value}) & (
            Q(**{f"{order_field}__lt": before.value}) | Q(pk__lt=before.pk)
        )
        found = list(rows.filter(earlier).order_by(f"-{order_field}", "-pk")[: per_page + 1])
        has_previous, has_next = len(found) > per_page, True
        found = found[:per_page][::-1]
        number = number if has_previous else 1
    elif after is not None:
        later = Q(**{f"{order_field}__gte": after.value}) & (
            Q(**{f"{order_field}__gt": after.value}) | Q(pk__gt=after.pk)
        )
        found = list(ascending.filter(later)[: per_page + 1])
        has_previous, has_next = True, len(found) > per_page
        found = found[:per_page]
        number = max(number, 2)
    else:
        # A typed page number: an OFFSET, past the end back to the last page.
        number = min(number, max((count + per_page - 1) // per_page, 1))
        start = (number - 1) * per_page
        found = list(ascending[start : start + per_page + 1])
        has_previous, has_next = number > 1, len(found) > per_page
        found = found[:per_page]
    return KeysetPage(
        object_list=found,
        number=number,
        per_page=per_page,
        count=count,
        has_previous=has_previous,
        has_next=has_next,
        query=query,
        order_field=order_field,
    )
