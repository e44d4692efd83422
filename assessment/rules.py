"""Who may use the assessment pages: one rule per page, shared by the views, the admin and the services.

| page | rule |
|---|---|
| report, drill-down, export, dashboard (+ data), standard answers for a case | :func:`user_reads_assessment` |
| topics and improvement actions (read) | :func:`user_reads_topics` |
| topic review: confirm, dismiss, split, article, assign an action; knowledge base edits | :func:`user_reviews_topics` |
| knowledge base (read) | :func:`user_reads_assessment` |
| weights | superusers |

Figures and case lists are further limited to ``cases_visible_to(user)`` by the pages themselves.
"""

from accounts.models import User


def user_reads_assessment(*, user: User) -> bool:
    """Tell whether ``user`` may open the assessment pages: a role that reads cases (DESIGN.md §1).

    Staff without a role (``casework.view_case``) read no case subject, figure or standard answer.
    """
    return user.is_active and (user.is_superuser or user.has_perm("casework.view_case"))


def user_reviews_topics(*, user: User) -> bool:
    """Tell whether ``user`` reviews common-issue topics: the 网评办 (dispatchers, office reviewers).

    Source: DESIGN.md §1 (the office groups messages into topics and assigns improvement actions).
    """
    return user.is_active and (user.is_superuser or user.has_perm("casework.dispatch_case")
                               or user.has_perm("casework.office_review_case"))


def user_reads_topics(*, user: User) -> bool:
    """Tell whether ``user`` reads topics and improvement actions: the 网评办 and the 分管局领导."""
    return user_reviews_topics(user=user) or (user.is_active and user.has_perm("casework.leader_review_case"))
