"""Dispatch suggestion from the archive: training, the stored model, suggestions and acceptance.

Rules (issue 12):

- The model learns subject + body → the lead unit that finally answered, from the replied and
  archived cases with a published reply (merged duplicates excluded); units with fewer than
  ``MIN_UNIT_CASES`` such cases are left out. With fewer than ``CASEWORK_ROUTER_MIN_HISTORY``
  (default 30) cases or fewer than two units, no model is trained and the keyword catalogue
  (:func:`casework.routing.unit_suggest`) stands.
- A suggestion names the top three units with a confidence (temperature-scaled, see
  :mod:`casework.router`) and the words that weighed most. When the best confidence is below
  ``settings.CASEWORK_ROUTER_THRESHOLD`` (default 0.5), the catalogue's unit is the suggestion,
  labelled as such; the model's three stay visible for reference.
- Each dispatch records, in its audit event, which unit was suggested, by which source, and
  whether the dispatcher took it; :func:`suggestion_acceptance` reports the rate per unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import logging
import threading

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Unit
from casework.models import Case, CaseEvent, RouterModel, State
from casework.router import Router, text_of, train_with_scores
from casework.routing import unit_suggest

logger = logging.getLogger("casework")

MIN_HISTORY = 30
MIN_UNIT_CASES = 3
DEFAULT_THRESHOLD = 0.5
FOLDS = 3

# Keyed by the row's id and training time: an id may come back (SQLite reuses the highest rowid
# after a delete, a rolled-back test's rows), a trained model never changes.
_cache: dict[tuple, Router] = {}
_cache_lock = threading.Lock()


def router_threshold() -> float:
    """The confidence below which the catalogue's suggestion stands (``CASEWORK_ROUTER_THRESHOLD``)."""
    return float(getattr(settings, "CASEWORK_ROUTER_THRESHOLD", DEFAULT_THRESHOLD))


def router_min_history() -> int:
    """The fewest usable archived cases to train on (``CASEWORK_ROUTER_MIN_HISTORY``, default 30)."""
    return int(getattr(settings, "CASEWORK_ROUTER_MIN_HISTORY", MIN_HISTORY))


def router_training_set() -> tuple[list[str], list[int]]:
    """Return (texts, lead unit ids) of the archive the model learns from (see the module rules)."""
    rows = list(
        Case.objects.filter(state__in=[State.REPLIED, State.ARCHIVED], lead_unit__isnull=False,
                            merged_into__isnull=True)
        .exclude(published_reply="")
        .values_list("subject", "body", "lead_unit_id")
    )
    counts: dict[int, int] = {}
    for _s, _b, unit_id in rows:
        counts[unit_id] = counts.get(unit_id, 0) + 1
    keep = [r for r in rows if counts[r[2]] >= MIN_UNIT_CASES]
    return [text_of(s, b) for s, b, _u in keep], [u for _s, _b, u in keep]


def router_train(*, folds: int = FOLDS) -> RouterModel | None:
    """Train the dispatch model on the archive, store it with its cross-validated scores, activate it.

    Args:
        folds: cross-validation folds for the stored scores (stratified, every case scored by a
            model that did not see it).

    Returns:
        the new active ``RouterModel``, or None when the archive is too small (fewer than
        ``MIN_HISTORY`` usable cases or fewer than two units); the previous model then stays.
    """
    texts, labels = router_training_set()
    if len(texts) < router_min_history() or len(set(labels)) < 2:
        logger.info("router: %d archived cases in %d units, too little history to train",
                    len(texts), len(set(labels)))
        return None
    router, scores, seconds = train_with_scores(texts, labels, folds=folds)
    blob = router.dumps()
    with transaction.atomic():
        RouterModel.objects.filter(is_active=True).update(is_active=False)
        row = RouterModel.objects.create(
            trained_at=timezone.now(), n_cases=len(texts), n_units=len(set(labels)),
            size_bytes=len(blob), seconds=round(seconds, 2), folds=folds,
            macro_f1=scores.macro_f1, micro_f1=scores.micro_f1, top3=scores.top3,
            scores=scores.as_dict(), blob=blob, is_active=True,
        )
    logger.info("router: trained on %d cases, %d units, macro-F1 %.3f, %.1f s",
                len(texts), len(set(labels)), scores.macro_f1, seconds)
    return row


def router_active() -> tuple[RouterModel | None, Router | None]:
    """Return the active model row (without its bytes) and the loaded model, cached per process."""
    row = RouterModel.objects.filter(is_active=True).defer("blob").order_by("-trained_at", "-id").first()
    if row is None:
        return None, None
    with _cache_lock:
        router = _cache.get((row.pk, row.trained_at))
    if router is None:
        blob = RouterModel.objects.filter(pk=row.pk).values_list("blob", flat=True).first()
        try:
            router = Router.loads(blob)
        except Exception:  # a model written by another version: behave as if none were trained
            logger.exception("router: model %s cannot be loaded", row.pk)
            return row, None
        with _cache_lock:
            _cache.clear()
            _cache[(row.pk, row.trained_at)] = router
    return row, router


@dataclass
class Suggestion:
    """What the dispatch screen shows: the unit that stands, its source, the model's top three."""

    source: str  # "model", "catalogue" or "none"
    unit: Unit | None
    confidence: float | None = None
    candidates: list[dict] = field(default_factory=list)  # {"unit", "confidence", "words"}
    note: str = ""
    model_id: int | None = None
    threshold: float = DEFAULT_THRESHOLD

    @property
    def source_label(self) -> str:
        return str({"model": _("历史案件学习模型"), "catalogue": _("派单目录关键词"),
                    "none": _("无建议")}[self.source])

    def as_payload(self) -> dict:
        """The part recorded in the dispatch event (see :func:`casework.services.case_dispatch`)."""
        return {"unit_id": self.unit.pk if self.unit else None, "source": self.source,
                "confidence": round(self.confidence, 4) if self.confidence is not None else None,
                "model_id": self.model_id}


def dispatch_suggestion(*, case: Case, units=None) -> Suggestion:
    """Return the dispatch suggestion for ``case`` (see the module rules).

    Args:
        units: the units the dispatcher may choose (a queryset or list); suggestions outside it
            are dropped. Default: all active units.

    Takes a few milliseconds once the model is loaded (one query for the active row).
    """
    allowed = {u.pk: u for u in (units if units is not None else Unit.objects.filter(is_active=True))}
    threshold = router_threshold()
    row, router = router_active()
    candidates: list[dict] = []
    note = ""
    if router is None:
        note = str(_("历史案件不足,尚未训练模型"))
    else:
        for item in router.suggest(text_of(case.subject, case.body), k=len(router.classes)):
            unit = allowed.get(int(item["label"]))
            if unit is not None:
                candidates.append({"unit": unit, "confidence": item["confidence"], "words": item["words"]})
            if len(candidates) == 3:
                break
        if candidates and candidates[0]["confidence"] >= threshold:
            best = candidates[0]
            return Suggestion(source="model", unit=best["unit"], confidence=best["confidence"],
                              candidates=candidates, model_id=row.pk, threshold=threshold)
        note = str(_("模型置信度低于阈值 %(t).0f%%") % {"t": threshold * 100})
    catalogue_units = [u for u in allowed.values() if u.keywords]
    catalogue_units.sort(key=lambda u: u.path)
    unit = unit_suggest(case=case, units=catalogue_units)
    return Suggestion(source="catalogue" if unit else "none", unit=unit, candidates=candidates, note=note,
                      model_id=row.pk if row else None, threshold=threshold)


def suggestion_acceptance(*, since=None) -> list[dict]:
    """Return, per suggested unit, how many dispatches carried a suggestion and how many took it.

    Rows: ``unit`` (name), ``unit_id``, ``source`` ("model"/"catalogue"), ``offered``, ``taken``,
    ``rate`` (0–1). Read from the dispatch audit events (their ``suggestion`` payload); ``since``
    (aware datetime) limits to dispatches at or after it. For superusers' eyes (the caller checks).
    """
    events = CaseEvent.objects.filter(action="dispatch").filter(Q(payload__has_key="suggestion"))
    if since is not None:
        events = events.filter(at__gte=since)
    stats: dict[tuple, dict] = {}
    for payload in events.values_list("payload", flat=True):
        s = payload.get("suggestion") or {}
        if not s.get("unit_id"):
            continue
        key = (s["unit_id"], s.get("source") or "")
        row = stats.setdefault(key, {"unit_id": s["unit_id"], "source": s.get("source") or "",
                                     "offered": 0, "taken": 0})
        row["offered"] += 1
        row["taken"] += 1 if s.get("taken") else 0
    names = dict(Unit.objects.filter(pk__in=[k[0] for k in stats]).values_list("pk", "name"))
    out = []
    for row in stats.values():
        row["unit"] = names.get(row["unit_id"], str(row["unit_id"]))
        row["rate"] = row["taken"] / row["offered"] if row["offered"] else None
        out.append(row)
    out.sort(key=lambda r: (-r["offered"], r["unit"]))
    return out
