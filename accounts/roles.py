"""The roles of DESIGN.md §1. Each role is a Django group named by its code.

A role grants model-level permissions (what kind of action a person may take); *where* a person may
act is decided separately by the unit scope in :mod:`accounts.selectors`.
"""

from django.utils.translation import gettext_lazy as _

DISPATCHER = "dispatcher"
HANDLER = "handler"
OFFICE_REVIEWER = "office_reviewer"
LEADER = "leader"
SUPERVISOR = "supervisor"

ROLE_LABELS = {
    DISPATCHER: _("网评办交办员"),
    HANDLER: _("办理员"),
    OFFICE_REVIEWER: _("网评办审核"),
    LEADER: _("分管局领导"),
    SUPERVISOR: _("纪检督察"),
}

# Permissions (app_label.codename) each role's group holds. Source: DESIGN.md §1 and §3.
ROLE_PERMISSIONS = {
    DISPATCHER: [
        "casework.view_case",
        "casework.add_case",
        "casework.register_case",
        "casework.dispatch_case",
        "casework.reject_case",
        "casework.publish_reply",
        "casework.follow_up_case",
        "casework.archive_case",
        "casework.import_messages",
        "casework.view_supervisionnotice",
        "casework.view_disciplinereferral",
        "casework.view_rectificationround",
        "casework.merge_case",
        "casework.assign_co_unit",
        "casework.mark_key_case",
        "casework.decide_extension",
        "casework.view_extension",
        "casework.view_citizen_contact",
        "casework.open_supervision",
        "casework.refer_poor_handling",
        "casework.view_qualitystep",
    ],
    HANDLER: [
        "casework.view_case",
        "casework.accept_case",
        "casework.return_case",
        "casework.submit_feedback",
        "casework.view_supervisionnotice",
        "casework.answer_supervision",
        "casework.view_rectificationround",
        "casework.request_extension",
        "casework.view_extension",
    ],
    OFFICE_REVIEWER: [
        "casework.view_case",
        "casework.office_review_case",
        "casework.view_supervisionnotice",
        "casework.view_disciplinereferral",  # issue 13: the office refers for poor handling
        "casework.open_supervision",
        "casework.refer_poor_handling",
        "casework.view_qualitystep",
    ],
    LEADER: [
        "casework.view_case",
        "casework.leader_review_case",
        "casework.mark_key_case",
        "casework.view_supervisionnotice",
        "casework.view_disciplinereferral",
        "casework.open_supervision",
        "casework.refer_poor_handling",
        "casework.view_qualitystep",
        "casework.view_rectificationround",
    ],
    SUPERVISOR: [
        "casework.view_case",
        "casework.view_supervisionnotice",
        "casework.view_disciplinereferral",
        "casework.view_rectificationround",
        "casework.record_referral_outcome",
    ],
}
