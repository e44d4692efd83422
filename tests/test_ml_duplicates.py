"""Duplicates at intake (issue 12, item 2): constructed repeats are flagged, non-repeats are not.

Every intake path registers through ``case_register``: the manual entry, the spreadsheet import
and the platform push are each exercised; the dispatcher merges a flagged repeat in one click.
"""

import base64
from datetime import datetime, timedelta
import io
import json
from zoneinfo import ZoneInfo

from django.test.utils import override_settings
from django.urls import reverse
import pytest

from casework import importing
from casework.duplicates import band_keys, duplicates_index_and_flag_many, jaccard, shingles
from casework.models import Case, DuplicateBand, DuplicateFlag, State

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)

ORIGINAL = ("A3区枫林路小区门口的路灯坏了三个多月", "A3区枫林路与银杏路交叉口往东一百米的小区门口，路灯已经坏了三个多月，"
            "晚上一片漆黑，老人孩子出门很不安全，上个月还有人在这里摔倒。多次向社区反映都没有人来修，"
            "请相关部门尽快派人维修，谢谢！")
CAMPAIGN = ("强烈要求退还K2区御珑湾小区天然气开户费", "尊敬的领导：K2区御珑湾小区开发商违规收取天然气开户费1800元，按照国家规定，"
            "水电气开户费用已计入房屋建筑成本，开发商不应收取该笔费用，强烈要求开发商尽快退回天然气开户费，"
            "请有关部门调查处理，还业主一个公道！")
OTHER = ("咨询新生儿落户需要的材料", "我家孩子上个月出生，想咨询一下在A市给新生儿办理户口登记需要准备哪些材料，"
         "父母一方是外地户口可以随哪一方落户？是否需要先办理出生医学证明？谢谢解答。")


@pytest.mark.django_db
def test_same_citizen_again_and_same_text_from_many_are_flagged(bureau):
    first = bureau.register(subject=ORIGINAL[0], body=ORIGINAL[1], citizen_name="UU0081234", submitted_at=T0)
    # The same citizen, a week later, rewords the complaint (well below the copy-paste threshold).
    again = bureau.register(subject="枫林路小区门口路灯还是没人修", citizen_name="UU0081234",
                            body="我上周反映过A3区枫林路小区门口的路灯坏了三个多月，晚上一片漆黑，到现在还是没有人来修，"
                                 "老人孩子出门很不安全，请尽快处理。", submitted_at=T0 + timedelta(days=7))
    flag = DuplicateFlag.objects.get(case=again)
    assert (flag.repeats, flag.reason) == (first, DuplicateFlag.Reason.SAME_CITIZEN)
    assert 0.3 <= flag.similarity < 0.6

    # A copy-paste campaign: the same text from three different citizens, with tiny edits.
    c1 = bureau.register(subject=CAMPAIGN[0], body=CAMPAIGN[1], citizen_name="UU1", submitted_at=T0)
    c2 = bureau.register(subject=CAMPAIGN[0], body=CAMPAIGN[1].replace("尊敬的领导：", "领导您好，"),
                         citizen_name="UU2", submitted_at=T0 + timedelta(hours=2))
    c3 = bureau.register(subject=CAMPAIGN[0] + "!", body=CAMPAIGN[1] + "业主 敬上", citizen_name="UU3",
                         submitted_at=T0 + timedelta(days=1))
    assert [(f.repeats, f.reason) for f in DuplicateFlag.objects.filter(case=c2)] == [
        (c1, DuplicateFlag.Reason.SAME_TEXT)]
    assert {f.repeats for f in DuplicateFlag.objects.filter(case=c3)} == {c1, c2}
    assert all(f.similarity >= 0.6 for f in DuplicateFlag.objects.filter(case__in=[c2, c3]))
    assert not DuplicateFlag.objects.filter(case=c1).exists()  # the first of them repeats nothing


@pytest.mark.django_db
def test_non_repeats_are_not_flagged(bureau):
    bureau.register(subject=ORIGINAL[0], body=ORIGINAL[1], citizen_name="UU0081234", submitted_at=T0)
    # Another subject from another citizen, a related but different complaint, a repeat of an old closed case.
    unrelated = bureau.register(subject=OTHER[0], body=OTHER[1], citizen_name="UU777", submitted_at=T0)
    related = bureau.register(subject="A3区银杏路的红绿灯时间太短", citizen_name="UU778", submitted_at=T0,
                              body="A3区银杏路与枫林路交叉口的红绿灯，行人绿灯只有十几秒，老人孩子根本走不过去，"
                                   "请交警部门调整信号灯时长。")
    old = bureau.case_in(State.ARCHIVED, subject=CAMPAIGN[0], body=CAMPAIGN[1], citizen_name="UU1",
                         submitted_at=T0 - timedelta(days=400))
    late = bureau.register(subject=CAMPAIGN[0], body=CAMPAIGN[1], citizen_name="UU9", submitted_at=T0)
    assert not DuplicateFlag.objects.filter(case__in=[unrelated, related, late]).exists()
    assert old.state == State.ARCHIVED
    # Every registered case is indexed (one key per band), so later repeats find it.
    assert DuplicateBand.objects.filter(case=unrelated).count() == 32


def test_minhash_keys_are_shared_by_near_repeats_and_not_by_strangers():
    a = shingles(*CAMPAIGN)
    b = shingles(CAMPAIGN[0], CAMPAIGN[1].replace("尊敬的领导：", "领导您好，"))
    c = shingles(*OTHER)
    assert jaccard(a, b) > 0.8 and jaccard(a, c) < 0.05
    assert set(band_keys(a)) & set(band_keys(b))
    assert not set(band_keys(a)) & set(band_keys(c))


@pytest.mark.django_db
def test_band_keys_equal_those_of_a_fresh_datasketch_minhash():
    # band_keys reuses one MinHash per thread and remembers shingle hashes; the keys stored in
    # DuplicateBand must stay those of a new MinHash(num_perm=128, seed=1) over the UTF-8 shingles.
    import hashlib

    from datasketch import MinHash
    import numpy as np

    def fresh(sh):
        m = MinHash(num_perm=128, seed=1)
        m.update_batch([s.encode("utf-8") for s in sh])
        values = np.asarray(m.hashvalues, dtype=np.uint64)
        return [f"{b:02d}{hashlib.blake2b(values[b * 4:(b + 1) * 4].tobytes(), digest_size=12).hexdigest()}"
                for b in range(32)]

    texts = [ORIGINAL, CAMPAIGN, OTHER, ("abc", ""), ("😀 表情", "制表\t换行\n")]
    for subject, body in texts * 2:  # the second round hits the remembered hashes
        sh = shingles(subject, body)
        assert band_keys(sh) == fresh(sh)


def test_import_and_push_paths_flag_too_and_the_dispatcher_merges_in_one_click(bureau, client):
    first = bureau.register(subject=CAMPAIGN[0], body=CAMPAIGN[1], citizen_name="UU1", submitted_at=T0)
    csv_text = ("message_id,user_id,subject,body,submitted_at\n"
                f'X-1,UU2,{CAMPAIGN[0]},"{CAMPAIGN[1]}",2026-03-02T10:00:00\n')
    importing.messages_import(rows_source=io.BytesIO(csv_text.encode("utf-8")), platform=bureau.platform,
                              acting_user=bureau.dispatcher)
    imported = Case.objects.get(external_id="X-1")
    assert DuplicateFlag.objects.get(case=imported).repeats == first

    token = base64.b64encode(b"dispatcher:pw").decode()
    response = client.post(reverse("api_messages_push") + "?platform=wzxd", content_type="application/json",
                           data=json.dumps([{"message_id": "P-9", "user_id": "UU3", "subject": CAMPAIGN[0],
                                             "body": CAMPAIGN[1], "submitted_at": "2026-03-02T11:00:00+08:00"}],
                                           ensure_ascii=False),
                           HTTP_AUTHORIZATION=f"Basic {token}")
    assert response.status_code in (200, 201), response.content
    pushed = Case.objects.get(external_id="P-9")
    assert {f.repeats for f in DuplicateFlag.objects.filter(case=pushed)} == {first, imported}

    client.force_login(bureau.dispatcher)
    page = client.get(reverse("admin:casework_case_change", args=[pushed.pk])).content.decode()
    assert 'id="cw-duplicates"' in page and f'value="{first.reference}"' in page
    client.post(reverse("admin:casework_case_act", args=[pushed.pk, "merge"]),
                {"main_reference": first.reference, "reason": "系统提示重复留言"})
    pushed.refresh_from_db()
    assert (pushed.state, pushed.merged_into) == (State.ARCHIVED, first)



def _batch_messages():
    """Constructed intake batch: a campaign, a citizen's repeat, repeats inside the batch, strangers."""
    out = []
    for n in range(6):  # a copy-paste campaign from six citizens with small edits
        out.append((CAMPAIGN[0] + "!" * (n % 2), CAMPAIGN[1].replace("1800", str(1800 + n)), f"UC{n}", n))
    out.append((ORIGINAL[0], ORIGINAL[1], "UU0081234", 10))
    out.append(("枫林路小区门口路灯还是没人修", "我上周反映过A3区枫林路小区门口的路灯坏了三个多月，晚上一片漆黑，"
                "到现在还是没有人来修，老人孩子出门很不安全，请尽快处理。", "UU0081234", 11))
    out.append((OTHER[0], OTHER[1], "UU777", 12))
    out.append((OTHER[0], OTHER[1] + "急！", "UU778", 13))  # a repeat of the previous row, inside the batch
    out.append(("A3区银杏路的红绿灯时间太短", "A3区银杏路与枫林路交叉口的红绿灯，行人绿灯只有十几秒，请交警部门调整信号灯时长。",
                "UU779", 14))
    return out


def _flags_by_position(cases):
    pos = {c.pk: i for i, c in enumerate(cases)}
    return sorted((pos[f.case_id], pos.get(f.repeats_id, -1), f.reason, round(f.similarity, 4))
                  for f in DuplicateFlag.objects.filter(case__in=cases))


@pytest.mark.django_db
def test_set_based_batch_check_equals_registering_one_by_one(bureau, django_assert_max_num_queries):
    """The batch path (one pass per import batch) flags exactly what row-by-row registration flags."""
    before = bureau.case_in(State.ARCHIVED, subject=CAMPAIGN[0], body=CAMPAIGN[1], citizen_name="UU1",
                            submitted_at=T0 - timedelta(days=3))  # archived but recent: eligible for both runs
    one_by_one = [bureau.register(subject=s, body=b, citizen_name=u, submitted_at=T0 + timedelta(hours=h))
                  for s, b, u, h in _batch_messages()]
    expected = _flags_by_position(one_by_one)
    assert before.state == State.ARCHIVED and DuplicateFlag.objects.filter(repeats=before).exists()
    assert len(expected) >= 10 and any(p[1] == -1 for p in expected)  # the check has something to find
    assert (9, 8, DuplicateFlag.Reason.SAME_TEXT) in {p[:3] for p in expected}
    # Take the first run out of the way (merged away = never a candidate), then import the same batch at once.
    sink = bureau.register(subject="测试用并入目标", body="与本测试的留言无关的一段文字内容。", submitted_at=T0 - timedelta(days=900))
    Case.objects.filter(pk__in=[c.pk for c in one_by_one]).update(merged_into=sink)
    rows = "".join(f'B-{i},{u},{s},"{b}",{(T0 + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%S")}\n'
                   for i, (s, b, u, h) in enumerate(_batch_messages()))
    with override_settings(CASEWORK_INTAKE_DUPLICATES=False):
        importing.messages_import(rows_source=io.BytesIO(("message_id,user_id,subject,body,submitted_at\n" + rows)
                                                         .encode("utf-8")), platform=bureau.platform,
                                  acting_user=bureau.dispatcher)
    batch = list(Case.objects.filter(external_id__startswith="B-").order_by("pk"))
    assert len(batch) == len(one_by_one) and not DuplicateBand.objects.filter(case__in=batch).exists()
    with django_assert_max_num_queries(8):  # set-based: a fixed number of statements, not one per row
        flagged = duplicates_index_and_flag_many(case_ids=[c.pk for c in batch])
    assert flagged == len(expected)
    assert _flags_by_position(batch) == expected
    assert DuplicateBand.objects.filter(case__in=batch).count() == 32 * len(batch)
