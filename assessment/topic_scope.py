"""Topics as a reader may see them: only through the cases in their scope (issue 9 §1).

A topic groups messages of many units. A city-wide reader (superuser, or a grant on a root unit:
the 网评办, city leaders) sees every topic with its stored figures. Any other reader (a handler, a
unit-scoped leader) sees a topic only when at least one of its cases is visible to them
(``cases_visible_to``), and then every figure is computed on those cases alone: message and
citizen counts, likes, dislikes, first and last message, and the heat index (same formula,
:func:`assessment.topics.heat_index`). When some of the topic's cases are hidden from the reader,
its stored title and keywords (drawn from all members) are not shown: the title is the subject of
the reader's most central visible case and the keywords come from the visible subjects.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, QuerySet

from accounts.models import User
from accounts.selectors import user_is_city_wide
from assessment.models import Topic, TopicMembership
from assessment.topics import Message, heat_index, tokenize
from casework.selectors import cases_visible_to


@dataclass(frozen=True)
class TopicFigures:
    """A topic's title and figures as one reader may see them."""

    topic_id: int
    title: str
    keywords: str
    heat: float
    message_count: int
    citizen_count: int
    likes: int
    dislikes: int
    first_at: datetime | None
    last_at: datetime | None
    complete: bool  # the reader sees every case of the topic (stored figures shown)


def topics_reader_is_city_wide(*, user: User) -> bool:
    """Tell whether ``user`` reads topics city-wide (stored titles and figures)."""
    return bool(user.is_active and (user.is_superuser or user_is_city_wide(user=user)))


def topics_visible_to(*, user: User, queryset: QuerySet[Topic] | None = None) -> QuerySet[Topic]:
    """Return the topics ``user`` may see: all for a city-wide reader, else those with a visible case."""
    qs = queryset if queryset is not None else Topic.objects.all()
    if not user.is_active:
        return qs.none()
    if topics_reader_is_city_wide(user=user):
        return qs
    visible = cases_visible_to(user=user).values("id")
    return qs.filter(pk__in=TopicMembership.objects.filter(case__in=visible).values("topic_id"))


def _stored(topic: Topic) -> TopicFigures:
    return TopicFigures(
        topic_id=topic.pk, title=topic.title, keywords=topic.keywords, heat=topic.heat,
        message_count=topic.message_count, citizen_count=topic.citizen_count, likes=topic.likes,
        dislikes=topic.dislikes, first_at=topic.first_at, last_at=topic.last_at, complete=True,
    )


def topics_figures_for(*, user: User, topics) -> dict[int, TopicFigures]:
    """Return ``{topic id: TopicFigures}`` of ``topics`` as ``user`` may see them (module docstring).

    Args:
        user: the reader.
        topics: ``Topic`` instances or a queryset; topics without a case visible to ``user`` are
            left out for a scoped reader.

    Two queries for a scoped reader (visible members with their cases, member totals), none for a
    city-wide reader.
    """
    topics = list(topics)
    if topics_reader_is_city_wide(user=user):
        return {t.pk: _stored(t) for t in topics}
    by_id = {t.pk: t for t in topics}
    if not by_id or not user.is_active:
        return {}
    rows = (
        TopicMembership.objects.filter(topic_id__in=list(by_id), case__in=cases_visible_to(user=user).values("id"))
        .values_list("topic_id", "similarity", "case_id", "case__subject", "case__citizen_name",
                     "case__likes", "case__dislikes", "case__submitted_at")
    )
    members: dict[int, list] = defaultdict(list)
    for row in rows:
        members[row[0]].append(row)
    totals = dict(
        TopicMembership.objects.filter(topic_id__in=list(members)).order_by().values("topic_id")
        .annotate(n=Count("id")).values_list("topic_id", "n")
    )
    out = {}
    for topic_id, visible in members.items():
        topic = by_id[topic_id]
        complete = totals.get(topic_id, 0) == len(visible)
        if complete:
            out[topic_id] = _stored(topic)
            continue
        msgs = [Message(id=case_id, subject=subject, submitted_at=at, citizen=name or "",
                        likes=likes or 0, dislikes=dislikes or 0)
                for _t, _s, case_id, subject, name, likes, dislikes, at in visible]
        central = max(visible, key=lambda r: (r[1], -r[2]))
        words = Counter(w for m in msgs for w in tokenize(m.subject))
        times = [m.submitted_at for m in msgs if m.submitted_at is not None]
        out[topic_id] = TopicFigures(
            topic_id=topic_id,
            title=central[3][:200],
            keywords=" ".join(w for w, _n in words.most_common(5)),
            heat=heat_index(msgs),
            message_count=len(msgs),
            citizen_count=len({m.citizen or f"#{m.id}" for m in msgs}),
            likes=sum(m.likes for m in msgs),
            dislikes=sum(m.dislikes for m in msgs),
            first_at=min(times) if times else None,
            last_at=max(times) if times else None,
            complete=False,
        )
    return out


def hot_topics_for(*, user: User, limit: int = 10) -> list[TopicFigures]:
    """Return the ``limit`` hottest topics ``user`` may see (dismissed ones left out), by visible heat."""
    qs = topics_visible_to(user=user, queryset=Topic.objects.exclude(status=Topic.Status.DISMISSED))
    if topics_reader_is_city_wide(user=user):
        return [_stored(t) for t in qs.order_by("-heat", "-id")[:limit]]
    figures = topics_figures_for(user=user, topics=qs)
    return sorted(figures.values(), key=lambda f: (-f.heat, -f.topic_id))[:limit]


def topics_search_for(*, user: User, queryset: QuerySet[Topic], term: str) -> QuerySet[Topic]:
    """Narrow ``queryset`` to topics whose visible cases' subjects contain every word of ``term``.

    The topic search of a scoped reader: stored titles and keywords (drawn from every unit's
    messages) are not searched, so the search box cannot probe them.
    """
    visible = cases_visible_to(user=user)
    for bit in (term or "").split():
        cases = visible.filter(subject__icontains=bit).values("id")
        queryset = queryset.filter(pk__in=TopicMembership.objects.filter(case__in=cases).values("topic_id"))
    return queryset
