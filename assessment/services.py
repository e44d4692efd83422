"""Writes of the assessment app: weights, topics, the knowledge base and improvement actions.

Every function is keyword-only, runs in a transaction and takes the acting user where a person
decides something. Nothing here writes casework rows.
"""

from __future__ import annotations

from datetime import date

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Unit, User
from assessment.models import AssessmentWeights, ImprovementAction, KnowledgeArticle, Topic, TopicMembership
from assessment.rules import user_reviews_topics
from assessment.topics import Message, TopicGroup, heat_index, topics_group
from casework.models import Case


def assessment_weights_set(*, acting_user: User, **weights) -> AssessmentWeights:
    """Save a new set of annual-score weights; it is in force from now on.

    Raises:
        PermissionDenied: ``acting_user`` is not a superuser (weights are the bureau's policy).
        ValidationError: a weight is negative or unknown.
    """
    if not (acting_user.is_active and acting_user.is_superuser):
        raise PermissionDenied(_("只有系统管理员可以修改考核权重。"))
    row = AssessmentWeights(updated_by=acting_user)
    for name, value in weights.items():
        if not hasattr(row, name) or name in {"id", "updated_at", "updated_by"}:
            raise ValidationError(_("未知的权重:%s") % name)
        setattr(row, name, value)
    row.full_clean()
    row.save()
    return row


def _case_message(case: Case) -> Message:
    return Message(id=case.pk, subject=case.subject, body=case.body, submitted_at=case.submitted_at,
                   citizen=case.citizen_name or "", likes=case.likes or 0, dislikes=case.dislikes or 0)


def _topic_stats(topic: Topic) -> None:
    cases = list(Case.objects.filter(topic_membership__topic=topic))
    msgs = [_case_message(c) for c in cases]
    topic.message_count = len(msgs)
    topic.citizen_count = len({m.citizen or f"#{m.id}" for m in msgs})
    topic.likes = sum(m.likes for m in msgs)
    topic.dislikes = sum(m.dislikes for m in msgs)
    topic.heat = heat_index(msgs)
    times = [c.submitted_at for c in cases]
    topic.first_at = min(times) if times else None
    topic.last_at = max(times) if times else None
    topic.save(update_fields=["message_count", "citizen_count", "likes", "dislikes", "heat",
                              "first_at", "last_at"])


@transaction.atomic
def topics_suggest(*, cases: QuerySet[Case] | None = None, threshold: float = 0.35) -> list[Topic]:
    """Group messages into suggested topics, replacing the previous suggestions.

    Confirmed and dismissed topics and their members are kept and their cases are not regrouped;
    every other case in ``cases`` (default: all non-merged cases) is grouped afresh with
    :func:`assessment.topics.topics_group`.

    Returns:
        the new suggested topics, hottest first.
    """
    Topic.objects.filter(status=Topic.Status.SUGGESTED).delete()
    qs = cases if cases is not None else Case.objects.filter(merged_into__isnull=True)
    qs = qs.filter(topic_membership__isnull=True).only(
        "id", "subject", "body", "submitted_at", "citizen_name", "likes", "dislikes"
    )
    groups: list[TopicGroup] = topics_group([_case_message(c) for c in qs], threshold=threshold)
    created = []
    for g in groups:
        topic = Topic.objects.create(title=g.title[:200], keywords=" ".join(g.keywords)[:300], heat=g.heat)
        TopicMembership.objects.bulk_create(
            TopicMembership(topic=topic, case_id=m.id, similarity=s) for m, s in zip(g.members, g.similarity, strict=True)
        )
        _topic_stats(topic)
        created.append(topic)
    return created


def _require_office(user: User) -> None:
    if not user_reviews_topics(user=user):
        raise PermissionDenied(_("只有网评办可以审核主题。"))


@transaction.atomic
def topic_review(*, topic: Topic, acting_user: User, status: str, is_common_issue: bool | None = None,
                 title: str | None = None) -> Topic:
    """Confirm or dismiss a topic, optionally rename it and mark it a common issue (共性问题).

    Raises:
        PermissionDenied: the user may not change topics.
        ValidationError: unknown status, or a dismissed topic marked as a common issue.
    """
    _require_office(acting_user)
    if status not in Topic.Status.values:
        raise ValidationError(_("未知的状态。"))
    topic.status = status
    if title:
        topic.title = title[:200]
    if is_common_issue is not None:
        topic.is_common_issue = is_common_issue
    if topic.status == Topic.Status.DISMISSED and topic.is_common_issue:
        raise ValidationError(_("不成立的主题不能标记为共性问题。"))
    topic.reviewed_by = acting_user
    topic.reviewed_at = timezone.now()
    topic.save()
    return topic


@transaction.atomic
def topic_split(*, topic: Topic, acting_user: User, case_ids: list[int], title: str = "") -> Topic:
    """Move the cases ``case_ids`` of ``topic`` into a new confirmed topic and return it.

    Raises:
        ValidationError: no case given, a case is not in ``topic``, or all of them are.
    """
    _require_office(acting_user)
    members = TopicMembership.objects.filter(topic=topic, case_id__in=case_ids)
    if not case_ids or members.count() != len(set(case_ids)):
        raise ValidationError(_("请选择本主题中的留言。"))
    if members.count() == topic.memberships.count():
        raise ValidationError(_("不能把全部留言拆出。"))
    first = Case.objects.filter(pk__in=case_ids).order_by("submitted_at").first()
    new = Topic.objects.create(title=(title or first.subject)[:200], status=Topic.Status.CONFIRMED,
                               reviewed_by=acting_user, reviewed_at=timezone.now())
    members.update(topic=new)
    _topic_stats(topic)
    _topic_stats(new)
    return new


@transaction.atomic
def topic_article_attach(*, topic: Topic, acting_user: User, article: KnowledgeArticle | None) -> Topic:
    """Attach a standard answer to ``topic`` (None detaches it)."""
    _require_office(acting_user)
    topic.article = article
    topic.save(update_fields=["article"])
    return topic


@transaction.atomic
def improvement_action_assign(*, topic: Topic, acting_user: User, unit: Unit, description: str,
                              due_date: date, started_on: date | None = None) -> ImprovementAction:
    """Assign an improvement action on a common issue to ``unit`` with ``due_date``.

    Raises:
        ValidationError: the topic is not a confirmed common issue, or the description is empty.
    """
    _require_office(acting_user)
    if not (topic.status == Topic.Status.CONFIRMED and topic.is_common_issue):
        raise ValidationError(_("只有已确认的共性问题可以交办整改。"))
    if not (description or "").strip():
        raise ValidationError(_("请填写整改措施。"))
    return ImprovementAction.objects.create(
        topic=topic, unit=unit, description=description.strip(), due_date=due_date,
        started_on=started_on or timezone.localdate(), assigned_by=acting_user,
    )
