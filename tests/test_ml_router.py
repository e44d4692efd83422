"""Dispatch suggestion learned from the archive (issue 12, item 1) on a small labelled set.

The archive is built through the services (registered → … → replied) with two units, each
answering one kind of message; the model is trained by the real Celery task (eager), suggests on
new messages, gives way to the keyword catalogue below the threshold or without history, and the
dispatch records whether the suggestion was taken.
"""

import csv
from pathlib import Path

from django.core.management import call_command
from django.urls import reverse
import numpy as np
import pytest

from accounts.services import unit_save
from casework import router_service, tasks
from casework.models import CaseEvent, RouterModel, State
from casework.router import Router, count_views, text_of, words_of

DATA = Path(__file__).parent / "data" / "router_small.csv"


def small_set():
    with DATA.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def archive(bureau, settings):
    """Eight replied cases per unit: unit A answers traffic (交通运输), unit B health (卫生计生)."""
    settings.CASEWORK_ROUTER_MIN_HISTORY = 12
    rows = small_set()
    by_cat = {c: [r for r in rows if r["category"] == c] for c in ("交通运输", "卫生计生")}
    for cat, unit in (("交通运输", bureau.unit_a), ("卫生计生", bureau.unit_b)):
        for r in by_cat[cat][:8]:
            bureau.case_in(State.REPLIED, unit=unit, subject=r["subject"], body=r["body"])
    return by_cat


def test_pure_router_trains_and_ranks_the_right_label_first():
    rows = small_set()
    train, test = rows[:36], rows[36:]
    router = Router().fit([text_of(r["subject"], r["body"]) for r in train], [r["category"] for r in train])
    top = router.suggest(text_of(test[0]["subject"], test[0]["body"]))
    assert len(top) == 3 and abs(sum(t["confidence"] for t in top) - 1) < 1e-6
    assert top[0]["confidence"] >= top[1]["confidence"] >= top[2]["confidence"]
    assert all(isinstance(w, str) and len(w) >= 2 for w in top[0]["words"])
    right = sum(router.suggest(text_of(r["subject"], r["body"]))[0]["label"] == r["category"] for r in test)
    assert right >= len(test) * 0.6
    assert Router.loads(router.dumps()).suggest(text_of(test[0]["subject"], test[0]["body"]))[0]["label"] == top[0]["label"]


@pytest.mark.django_db
def test_task_trains_on_the_archive_and_suggests_with_confidence_and_words(archive, bureau, eager_celery):
    result = tasks.router_train.delay().get()
    model = RouterModel.objects.get(is_active=True)
    assert result["model_id"] == model.pk and model.n_cases == 16 and model.n_units == 2
    assert model.size_bytes == len(bytes(model.blob)) > 0 and model.macro_f1 is not None
    assert set(model.scores) >= {"per_class", "confusion", "macro_f1"}

    new = bureau.register(subject=archive["交通运输"][9]["subject"], body=archive["交通运输"][9]["body"])
    s = router_service.dispatch_suggestion(case=new)
    assert s.source == "model" and s.unit == bureau.unit_a
    assert [c["unit"] for c in s.candidates] == [bureau.unit_a, bureau.unit_b]
    assert s.candidates[0]["confidence"] > s.candidates[1]["confidence"]
    assert s.candidates[0]["words"]


@pytest.mark.django_db
def test_below_threshold_or_without_history_the_catalogue_stands(archive, bureau, settings):
    bureau.unit_b.keywords = "医院\n交通"
    unit_save(unit=bureau.unit_b)
    new = bureau.register(subject="交通 医院 事宜", body="交通与医院")
    s = router_service.dispatch_suggestion(case=new)
    assert s.source == "catalogue" and s.unit == bureau.unit_b and "不足" in s.note  # no model yet

    router_service.router_train()
    settings.CASEWORK_ROUTER_THRESHOLD = 0.999
    s = router_service.dispatch_suggestion(case=new)
    assert s.source == "catalogue" and s.unit == bureau.unit_b and s.candidates  # model's three still shown
    assert "阈值" in s.note

    settings.CASEWORK_ROUTER_MIN_HISTORY = 1000
    RouterModel.objects.all().delete()
    assert router_service.router_train() is None
    assert router_service.dispatch_suggestion(case=new).source == "catalogue"


@pytest.mark.django_db
def test_dispatch_page_shows_the_suggestion_and_records_acceptance(archive, bureau, client, django_user_model):
    router_service.router_train()
    text = archive["交通运输"][9]
    taken = bureau.register(subject=text["subject"], body=text["body"])
    overridden = bureau.register(subject=archive["卫生计生"][9]["subject"], body=archive["卫生计生"][9]["body"])
    client.force_login(bureau.dispatcher)

    page = client.get(reverse("admin:casework_case_change", args=[taken.pk])).content.decode()
    assert 'id="cw-dispatch-suggestion" data-source="model"' in page and bureau.unit_a.name in page
    assert f'<option value="{bureau.unit_a.pk}" selected>' in page  # preselected on the suggestion

    def dispatch(case, unit):
        page = client.get(reverse("admin:casework_case_change", args=[case.pk])).content.decode()
        hidden = {}
        for name in ("suggested_unit_id", "suggestion_source", "suggestion_confidence", "suggestion_model_id"):
            start = page.index(f'name="{name}"')
            value = page[start:].split('value="', 1)[1].split('"', 1)[0] if 'value="' in page[start:start + 200] else ""
            hidden[name] = value
        client.post(reverse("admin:casework_case_act", args=[case.pk, "dispatch"]),
                    {"unit": unit.pk, "expected_state": State.REGISTERED, **hidden})
        return CaseEvent.objects.get(case=case, action="dispatch").payload["suggestion"]

    first = dispatch(taken, bureau.unit_a)
    assert first["taken"] is True and first["unit_id"] == bureau.unit_a.pk and first["source"] == "model"
    suggested = router_service.dispatch_suggestion(case=overridden).unit
    other = bureau.unit_b if suggested == bureau.unit_a else bureau.unit_a
    second = dispatch(overridden, other)  # the dispatcher chose another unit than suggested
    assert second["taken"] is False and second["unit_id"] == suggested.pk

    rows = router_service.suggestion_acceptance()
    assert sum(r["offered"] for r in rows) == 2 and sum(r["taken"] for r in rows) == 1
    by_unit = {r["unit_id"]: r for r in rows}
    assert by_unit[bureau.unit_a.pk]["taken"] == 1

    url = reverse("admin:casework_routermodel_changelist")
    assert client.get(url).status_code == 403  # the acceptance page is for superusers
    admin = django_user_model.objects.create_superuser("root", "root@bureau.invalid", "pw")
    client.force_login(admin)
    page = client.get(url).content.decode()
    assert 'id="cw-acceptance"' in page and bureau.unit_a.name in page and "%" in page


def test_router_eval_cross_validates_and_scores_a_second_file(tmp_path):
    from io import StringIO

    out = StringIO()
    call_command("router_eval", str(DATA), "--folds", "3", stdout=out)
    text = out.getvalue()
    assert "3-fold stratified cross-validation on 48 messages" in text
    assert "near-duplicates kept in one fold: " in text
    for needle in ("macro-F1:", "micro-F1:", "top-3 accuracy:", "precision  recall", "confusion", "交通运输"):
        assert needle in text
    macro = float(text.split("macro-F1:")[1].split()[0])
    assert 0.5 < macro <= 1.0

    rows = small_set()
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    for path, part in ((train, rows[:36]), (test, rows[36:])):
        with path.open("w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["subject", "body", "category"])
            w.writeheader()
            w.writerows(part)
    out = StringIO()
    call_command("router_eval", str(train), "--test", str(test), stdout=out)
    text = out.getvalue()
    assert "trained on 36 messages" in text and "scored 12 unseen messages" in text
    confusion = text.split("in the class order above)")[1].strip().split("\n\n")[0].splitlines()
    assert sum(int(v) for line in confusion for v in line.split()[1:]) == 12


def test_stop_list_is_bundled_and_explanations_are_distinct_meaningful_words():
    """The words shown with a suggestion: from the message, none on the stop list, none inside another."""
    from casework.router import STOPWORDS, STOPWORDS_FILE, meaningful_term, stopwords_load

    assert STOPWORDS_FILE.is_file() and STOPWORDS == stopwords_load()
    assert {"尊敬", "领导", "您好", "谢谢", "问题", "希望", "我们", "部门"} <= STOPWORDS
    assert not any(w.startswith("#") for w in STOPWORDS)
    # The rule on single terms: filler, fragments, numbers and anonymised places are refused.
    assert meaningful_term("路灯", message_words={"路灯"}) == "路灯"
    assert meaningful_term("路灯 损坏") == "路灯损坏"
    assert meaningful_term("领导") is None and meaningful_term("希望 路灯") is None
    assert meaningful_term("的路灯", message_words={"路灯"}) is None  # a char n-gram that is no word
    assert meaningful_term("A3区") is None and meaningful_term("2019") is None

    rows = small_set()
    router = Router().fit([text_of(r["subject"], r["body"]) for r in rows[:36]], [r["category"] for r in rows[:36]])
    filler = "尊敬的领导您好！我们希望有关部门尽快处理这个问题，谢谢！"
    for r in rows[36:]:
        for item in router.suggest(filler + text_of(r["subject"], r["body"]) + filler):
            words = item["words"]
            assert not set(words) & STOPWORDS, words
            assert all(a not in b for i, a in enumerate(words) for j, b in enumerate(words) if i != j), words
            assert all(w in (filler + r["subject"] + r["body"]).replace(" ", "") for w in words), words
    top = router.suggest(text_of(rows[36]["subject"], rows[36]["body"]))[0]
    assert top["words"], top  # a real message has something to show


def test_near_duplicate_groups_keep_copies_together_in_cross_validation():
    from casework.router import cross_validate, near_duplicate_groups

    rows = small_set()
    texts = [text_of(r["subject"], r["body"]) for r in rows]
    labels = [r["category"] for r in rows]
    copies = [t.replace("。", "！", 1) + "谢谢" for t in texts[:6]]  # re-posts with tiny edits
    groups = near_duplicate_groups(texts + copies)
    assert all(groups[i] == groups[len(texts) + i] for i in range(6))
    assert len(set(groups[:len(texts)].tolist())) == len(texts)  # the originals are all distinct
    scores, decision, classes = cross_validate(texts + copies, labels + labels[:6], folds=3, groups=groups)
    assert scores.n == len(texts) + 6 and decision.shape == (len(texts) + 6, len(classes))


def test_per_class_bias_lifts_the_small_class_and_is_fitted_without_the_scored_fold():
    """tune_bias: out-of-fold decisions biased against a small class get an offset that restores it."""
    import numpy as np

    from casework.router import BIAS_MIN_PER_CLASS, inner_bias, tune_bias

    rng = np.random.default_rng(0)
    classes = np.array(["big", "small"])
    y = np.array(["big"] * 300 + ["small"] * 60)
    truth = (y == "small").astype(float)
    # the small class's true rows score only a little above the big class, and 0.3 too low overall
    decision = np.column_stack([1 - truth, truth]) * 0.5 + rng.normal(0, 0.2, (len(y), 2))
    decision[:, 1] -= 0.3
    before = (classes[decision.argmax(1)] == "small")[y == "small"].mean()
    bias = tune_bias(decision, y, classes)
    after = (classes[(decision + bias).argmax(1)] == "small")[y == "small"].mean()
    assert bias[1] - bias[0] > 0.1 and after > before + 0.2
    # too few rows of a class: no offsets at all
    few = np.r_[np.arange(300), np.arange(300, 300 + BIAS_MIN_PER_CLASS - 1)]
    assert not tune_bias(decision[few], y[few], classes).any()

    rows = small_set()  # 48 messages: below the minimum per class, so no offsets are fitted
    router = Router()
    X = router.fit_matrix([text_of(r["subject"], r["body"]) for r in rows], [r["category"] for r in rows])
    assert not inner_bias(X, [r["category"] for r in rows], None, C=router.C).any()
    router.set_bias(np.linspace(-1, 1, len(router.classes)))
    again = Router.loads(router.dumps())
    assert np.allclose(again.bias, router.bias)
    text = text_of(rows[0]["subject"], rows[0]["body"])
    assert np.allclose(again.decision([text]), Router.decision_of_matrix(again, again._matrix([text]), bias=False)
                       + router.bias)



def test_training_from_shared_counts_equals_fitting_the_vectorisers_on_the_texts():
    """Cross-validation and the final fit read the TF-IDF off one count pass (``fit_counts``): the
    vocabulary, matrix, decisions and suggestions equal those of fitting on the texts, for all the
    messages and for a fold of them."""
    rows = small_set()
    texts = [text_of(r["subject"], r["body"]) for r in rows]
    labels = [r["category"] for r in rows]
    views = count_views(texts, [words_of(t) for t in texts])
    every, half = Router(), Router()
    every.fit_counts(views, labels)
    half.fit_counts(views, labels, rows=list(range(0, len(texts), 2)))
    for plain, shared in ((Router().fit(texts, labels), every), (Router().fit(texts[::2], labels[::2]), half)):
        assert list(plain.chars.get_feature_names_out()) == list(shared.chars.get_feature_names_out())
        assert list(plain.words.get_feature_names_out()) == list(shared.words.get_feature_names_out())
        assert abs(plain._matrix(texts) - shared._matrix(texts)).max() < 1e-5
        assert np.abs(plain.decision(texts) - shared.decision(texts)).max() < 1e-4
        assert plain.suggest(texts[0])[0]["label"] == Router.loads(shared.dumps()).suggest(texts[0])[0]["label"]
