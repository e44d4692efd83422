"""Dispatch suggestion learned from the archive: the pure model (no database, no Django).

A message (subject + body) is turned into two sparse TF-IDF views, character 1–3-grams of the text
with whitespace removed, and jieba words and word bigrams; a one-vs-rest linear SVM is trained on
their concatenation, each unit's errors weighed by the inverse of its size (one-vs-rest otherwise
favours the big units). Optionally a per-class offset is added to the decision values, fitted on
out-of-fold decisions to maximise macro-F1 (:func:`tune_bias`; off by default, see
:func:`cross_validate`). The decision values are turned into confidences by a
softmax whose temperature is fitted on out-of-fold decision values (temperature scaling), so
"0.80" means about 80 % of suggestions at that confidence were right in cross-validation.

Only numpy, scipy, scikit-learn and jieba are used; nothing is downloaded. The model code is here
so that ``manage.py router_eval`` and the archive training (:mod:`casework.router_service`) run the
same pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import io
from pathlib import Path
import re
import time

from datasketch import MinHash, MinHashLSH
import jieba
import joblib
import numpy as np
from scipy.optimize import minimize_scalar
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.preprocessing import normalize
from sklearn.svm import LinearSVC

jieba.setLogLevel(60)

_SPACE = re.compile(r"\s+")
_WORDISH = re.compile(r"[\u4e00-\u9fffA-Za-z0-9]{2,}")
_PLACEHOLDER = re.compile(r"[A-Z]\d*[省市区县州镇乡村]|^[A-Za-z]?\d+$")  # anonymised places (A3区), numbers
FORMAT_VERSION = 1
STOPWORDS_FILE = Path(__file__).resolve().parent / "data" / "router" / "stopwords.txt"


def stopwords_load(path: Path = STOPWORDS_FILE) -> frozenset[str]:
    """Return the bundled stop list: words never offered as a suggestion's explanation.

    The file (``casework/data/router/stopwords.txt``) has one word per line; ``#`` starts a
    comment line. Raises OSError when the file is missing (it ships with the code).
    """
    words = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            words.add(line)
    return frozenset(words)


STOPWORDS = stopwords_load()


def meaningful_term(term: str, *, message_words: set[str] | None = None) -> str | None:
    """Return ``term`` as shown to the dispatcher if it is a meaningful explanation word, else None.

    ``term`` is a feature name: jieba words joined by a space (a word or a word bigram) or a
    character n-gram (no space). Every word of it must have at least two characters (Chinese,
    Latin or digits), not be a number or an anonymised place (``A3区``), and not be on the stop
    list; a character n-gram counts only if it is itself one of the message's jieba words
    (``message_words``), so fragments such as ``的路灯`` are never shown.
    """
    pieces = term.split(" ")
    if len(pieces) == 1 and message_words is not None and term not in message_words:
        return None
    for piece in pieces:
        if not _WORDISH.fullmatch(piece) or piece in STOPWORDS or _PLACEHOLDER.search(piece):
            return None
    return "".join(pieces)


def text_of(subject: str, body: str) -> str:
    """Return the text the model reads: subject and body joined by 。, all whitespace removed.

    Whitespace is removed because part of the labelled archive comes without it; the subject is
    kept first so short messages still carry their topic.
    """
    return _SPACE.sub("", f"{subject or ''}。{body or ''}")


def words_of(text: str) -> str:
    """Return ``text`` cut into jieba words, joined by spaces (the word view's input)."""
    return " ".join(w for w in jieba.lcut(text) if w.strip())


@dataclass
class Scores:
    """Evaluation figures: macro/micro F1, top-3 accuracy, per-class figures and the confusion table."""

    macro_f1: float
    micro_f1: float
    top3: float
    n: int
    labels: list
    per_class: list[dict] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"macro_f1": self.macro_f1, "micro_f1": self.micro_f1, "top3": self.top3, "n": self.n,
                "labels": [str(x) for x in self.labels], "per_class": self.per_class,
                "confusion": self.confusion}


def scores_of(y_true, decision: np.ndarray, classes) -> Scores:
    """Score decision values ``decision`` (n × classes) against ``y_true``."""
    y_true = np.asarray(y_true)
    classes = np.asarray(classes)
    order = np.argsort(-decision, axis=1)
    pred = classes[order[:, 0]]
    top3 = float(np.mean([y_true[i] in classes[order[i, :3]] for i in range(len(y_true))])) if len(y_true) else 0.0
    labels = list(classes)
    p, r, f, s = precision_recall_fscore_support(y_true, pred, labels=labels, zero_division=0)
    per_class = [{"label": str(lab), "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                  "support": int(s[i])} for i, lab in enumerate(labels)]
    present = [lab for lab in labels if lab in set(y_true)]
    return Scores(
        macro_f1=float(f1_score(y_true, pred, labels=present, average="macro", zero_division=0)),
        micro_f1=float(f1_score(y_true, pred, labels=labels, average="micro", zero_division=0)),
        top3=top3,
        n=len(y_true),
        labels=labels,
        per_class=per_class,
        confusion=confusion_matrix(y_true, pred, labels=labels).tolist(),
    )


class Router:
    """Char n-gram + jieba word TF-IDF, linear SVM, per-class bias, temperature-scaled confidences.

    Args:
        C: the SVM's regularisation (smaller is smoother).
        temperature: softmax temperature for confidences; :meth:`calibrate` fits it.
        class_weight: ``"balanced"`` (default) weighs each unit's training errors by the inverse of
            its size, so the one-vs-rest SVM no longer favours the big units (grouped 5-fold CV on
            the bundled set: macro-F1 0.9026 → 0.9094, top-3 unchanged); None = unweighted.
    """

    def __init__(self, *, C: float = 0.5, temperature: float = 0.3, class_weight: str | None = "balanced"):
        self.C = C
        self.temperature = temperature
        self.class_weight = class_weight
        self.bias: np.ndarray | None = None  # per class, added to the decision values (tune_bias)
        self.chars: TfidfVectorizer | None = None
        self.words: TfidfVectorizer | None = None
        self.svm: LinearSVC | None = None
        self.feature_names: np.ndarray | None = None

    # ---------------------------------------------------------------- training

    def _vectorizers(self, n_docs: int):
        min_df = 2 if n_docs >= 50 else 1
        chars = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=min_df,
                                dtype=np.float32)
        words = TfidfVectorizer(token_pattern=r"(?u)\S+", ngram_range=(1, 2), sublinear_tf=True,
                                min_df=min_df, dtype=np.float32)
        return chars, words

    def fit(self, texts: list[str], labels, *, cut: list[str] | None = None) -> Router:
        """Train on ``texts`` (from :func:`text_of`) and their ``labels``; ``cut`` = precomputed words."""
        self.fit_matrix(texts, labels, cut=cut)
        return self

    def fit_matrix(self, texts: list[str], labels, *, cut: list[str] | None = None):
        """Train like :meth:`fit` and return the training feature matrix (sparse, n × features).

        The matrix lets cross-validation fit inner models on its rows without vectorising again.
        The per-class bias is reset (zero) until :meth:`set_bias` is called.
        """
        cut = cut if cut is not None else [words_of(t) for t in texts]
        self.chars, self.words = self._vectorizers(len(texts))
        X = sp.hstack([self.chars.fit_transform(texts), self.words.fit_transform(cut)]).tocsr()
        self.svm = LinearSVC(C=self.C, class_weight=self.class_weight).fit(X, np.asarray(labels))
        self.feature_names = None
        self.bias = None
        return X

    def fit_counts(self, views: list, labels, rows=None):
        """Train like :meth:`fit_matrix` from :func:`count_views` (the texts are not read again).

        ``rows`` (indices into the views; default all) are the training messages. The vectorisers
        are the same as :meth:`fit` would fit on those messages (vocabulary: terms in at least
        ``min_df`` of them, their smoothed IDF), so :meth:`suggest` works on new texts. Returns the
        training feature matrix.
        """
        n = views[0][0].shape[0]
        rows = np.arange(n) if rows is None else np.asarray(rows)
        self.chars, self.words = self._vectorizers(len(rows))
        blocks = []
        for (counts, names), vectorizer in zip(views, (self.chars, self.words), strict=True):
            keep, idf = view_weights(counts, rows, vectorizer.min_df)
            vectorizer.set_params(vocabulary={str(names[k]): i for i, k in enumerate(keep)})
            vectorizer.idf_ = idf
            blocks.append(view_matrix(counts[rows], keep, idf))
        X = sp.hstack(blocks).tocsr()
        self.svm = LinearSVC(C=self.C, class_weight=self.class_weight).fit(X, np.asarray(labels)[rows])
        self.feature_names = None
        self.bias = None
        return X

    def set_bias(self, bias) -> None:
        """Set the per-class offsets added to the decision values (one per :attr:`classes` entry)."""
        self.bias = None if bias is None else np.asarray(bias, dtype=float)

    def _matrix(self, texts: list[str], cut: list[str] | None = None):
        cut = cut if cut is not None else [words_of(t) for t in texts]
        return sp.hstack([self.chars.transform(texts), self.words.transform(cut)]).tocsr()

    @property
    def classes(self) -> np.ndarray:
        return self.svm.classes_

    def decision(self, texts: list[str], *, cut: list[str] | None = None) -> np.ndarray:
        """Return the SVM decision values plus the per-class bias, n × classes (binary: two columns)."""
        return self.decision_of_matrix(self._matrix(texts, cut))

    def decision_of_matrix(self, X, *, bias: bool = True) -> np.ndarray:
        """Decision values of a feature matrix (n × classes), with the per-class bias unless ``bias=False``."""
        d = self.svm.decision_function(X)
        if d.ndim == 1:  # binary: make it n × 2 like the multi-class case
            d = np.column_stack([-d, d])
        if bias and self.bias is not None:
            d = d + self.bias
        return d

    def proba(self, decision: np.ndarray) -> np.ndarray:
        """Turn decision values into confidences (softmax at the fitted temperature)."""
        z = decision / max(self.temperature, 1e-3)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def calibrate(self, decision: np.ndarray, y_true) -> float:
        """Fit the temperature on out-of-fold ``decision`` values (minimum log loss); returns it."""
        idx = {c: i for i, c in enumerate(self.classes)}
        rows = [(k, idx[t]) for k, t in enumerate(y_true) if t in idx]
        if not rows:
            return self.temperature
        ks, js = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
        d = decision[ks]

        def loss(temp):
            z = d / temp
            z = z - z.max(axis=1, keepdims=True)
            return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(js)), js]))

        self.temperature = float(minimize_scalar(loss, bounds=(0.02, 5.0), method="bounded").x)
        return self.temperature

    # ---------------------------------------------------------------- suggesting

    def suggest(self, text: str, *, k: int = 3, n_words: int = 5) -> list[dict]:
        """Return the ``k`` most likely labels for one text, best first.

        Each item: ``label``, ``confidence`` (0–1) and ``words``: up to ``n_words`` distinct
        meaningful terms of this text that weighed most *for that label against the others*
        (tf-idf × (the label's SVM weight − the mean weight of the other labels)), jieba words and
        word pairs of the message only, none on the bundled stop list
        (``casework/data/router/stopwords.txt``, see :func:`meaningful_term`), none contained in
        an earlier one.
        """
        cut = [words_of(text)]
        X = self._matrix([text], cut)
        p = self.proba(self.decision_of_matrix(X))[0]
        order = np.argsort(-p)[:k]
        if self.feature_names is None:
            self.feature_names = np.concatenate(
                [self.chars.get_feature_names_out(), self.words.get_feature_names_out()]
            )
        row = X[0]
        message_words = set(cut[0].split(" "))
        coef = self.svm.coef_
        if coef.shape[0] == 1:  # binary: class 1 has +w, class 0 has −w
            coef = np.vstack([-coef[0], coef[0]])
        weights = coef[:, row.indices]
        out = []
        for j in order:
            others = np.delete(weights, j, axis=0).mean(axis=0) if len(weights) > 1 else 0.0
            contrib = row.data * (weights[j] - others)
            words: list[str] = []
            for pos in np.argsort(-contrib):
                if contrib[pos] <= 0 or len(words) >= n_words:
                    break
                term = meaningful_term(str(self.feature_names[row.indices[pos]]), message_words=message_words)
                if term is None or any(term in w or w in term for w in words):
                    continue
                words.append(term)
            out.append({"label": self.classes[j], "confidence": float(p[j]), "words": words})
        return out

    # ---------------------------------------------------------------- storage

    def dumps(self) -> bytes:
        """Serialise the trained model (joblib, compressed)."""
        buf = io.BytesIO()
        self.feature_names = None
        for vectorizer in (self.chars, self.words):
            # The terms pruned by min_df are kept for introspection only; they would double the size.
            if getattr(vectorizer, "stop_words_", None) is not None:
                vectorizer.stop_words_ = None
        joblib.dump({"format": FORMAT_VERSION, "router": self}, buf, compress=3)
        return buf.getvalue()

    @staticmethod
    def loads(blob: bytes) -> Router:
        """Load a model written by :meth:`dumps`. Raises ValueError on an unknown format."""
        data = joblib.load(io.BytesIO(bytes(blob)))
        if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION:
            raise ValueError("unknown router model format")
        router = data["router"]
        if not hasattr(router, "bias"):  # stored before the per-class bias existed: no offsets
            router.bias = None
        if not hasattr(router, "class_weight"):  # stored before class weights: it was unweighted
            router.class_weight = None
        return router


def near_duplicate_groups(texts: list[str], *, threshold: float = 0.7) -> np.ndarray:
    """Return a group number per text; texts whose character 3-gram Jaccard ≥ ``threshold`` share one.

    Used to keep near-duplicate messages (re-posts, campaigns) in the same cross-validation fold,
    so a message is never scored by a model that saw its copy. MinHash LSH (datasketch, 64
    permutations) finds the candidate pairs, the exact Jaccard decides; groups are the connected
    components. Near-linear in the number of texts.
    """
    from_text = [re.sub(r"[\s\W_]+", "", t) for t in texts]
    sets = [{t[i:i + 3] for i in range(max(1, len(t) - 2))} for t in from_text]
    lsh = MinHashLSH(threshold=threshold, num_perm=64)
    hashes = []
    for i, sh in enumerate(sets):
        m = MinHash(num_perm=64, seed=1)
        m.update_batch([x.encode("utf-8") for x in sh])
        hashes.append(m)
        lsh.insert(i, m)
    parent = list(range(len(texts)))

    def root(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, m in enumerate(hashes):
        for j in lsh.query(m):
            if j > i and len(sets[i] & sets[j]) >= threshold * len(sets[i] | sets[j]):
                parent[root(i)] = root(j)
    return np.array([root(i) for i in range(len(texts))])


BIAS_MIN_PER_CLASS = 20  # fewer out-of-fold messages in some class: no per-class bias (too noisy)
BIAS_GRID = np.round(np.arange(-0.5, 0.5001, 0.025), 3)


def _macro_f1(true_idx: np.ndarray, pred_idx: np.ndarray, n: int) -> float:
    """Macro-F1 over the classes present in ``true_idx`` (integer class indices, fast)."""
    tp = np.bincount(true_idx[true_idx == pred_idx], minlength=n).astype(float)
    support = np.bincount(true_idx, minlength=n).astype(float)
    predicted = np.bincount(pred_idx, minlength=n).astype(float)
    present = support > 0
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros(n), where=(support + predicted) > 0)
    return float(f1[present].mean()) if present.any() else 0.0


def tune_bias(decision: np.ndarray, y_true, classes, *, passes: int = 3) -> np.ndarray:
    """Return per-class offsets that, added to ``decision``, maximise macro-F1 on these rows.

    ``decision`` (n × classes) must be *out-of-fold* values (each row scored by a model that did
    not see it), ``y_true`` their labels, ``classes`` the column order. Coordinate ascent: for
    each class in turn the offset on :data:`BIAS_GRID` (−0.5 … 0.5, step 0.025) that gives the
    best macro-F1 with the others fixed, ``passes`` rounds; a change must gain something, so ties
    keep 0. Returns zeros when some class has fewer than :data:`BIAS_MIN_PER_CLASS` rows (too
    little evidence). The SVM's one-vs-rest decisions favour the big units; the offsets trade a
    little of their recall for the small units' (交通运输 +0.15 on the bundled set).
    """
    classes = np.asarray(classes)
    y = np.asarray(y_true)
    n = len(classes)
    bias = np.zeros(n)
    known = np.isin(y, classes)
    if not known.any():
        return bias
    true_idx = np.searchsorted(classes, y[known])
    d = np.asarray(decision, dtype=float)[known]
    if np.bincount(true_idx, minlength=n).min() < BIAS_MIN_PER_CLASS:
        return bias
    best = _macro_f1(true_idx, d.argmax(axis=1), n)
    for _ in range(passes):
        changed = False
        for j in range(n):
            for v in BIAS_GRID:
                trial = bias.copy()
                trial[j] = v
                score = _macro_f1(true_idx, (d + trial).argmax(axis=1), n)
                if score > best + 1e-9:
                    best, bias, changed = score, trial, True
        if not changed:
            break
    return bias


def count_views(texts: list[str], cut: list[str]) -> list[tuple]:
    """Raw term counts of the model's two views over all ``texts``: ``[(counts, names), …]``.

    ``counts`` is a CSR matrix (messages × every term seen, min_df 1), ``names`` the terms; the
    analysers are those of :meth:`Router._vectorizers`. Cross-validation reads each fold's TF-IDF
    off these counts (:func:`view_weights`, :func:`view_matrix`) instead of re-reading the texts,
    with the same result as fitting the vectorisers on the fold.
    """
    chars = CountVectorizer(analyzer="char", ngram_range=(1, 3), dtype=np.int32)
    words = CountVectorizer(token_pattern=r"(?u)\S+", ngram_range=(1, 2), dtype=np.int32)
    return [(chars.fit_transform(texts).tocsr(), chars.get_feature_names_out()),
            (words.fit_transform(cut).tocsr(), words.get_feature_names_out())]


def view_weights(counts, rows, min_df: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept term columns, their IDF) as ``TfidfVectorizer(min_df=…, smooth_idf=True)`` fitted on ``rows``."""
    df = np.bincount(counts[rows].indices, minlength=counts.shape[1])
    keep = np.flatnonzero(df >= min_df)
    idf = np.log((1 + len(rows)) / (1 + df[keep])) + 1.0
    return keep, idf


def view_matrix(counts, keep: np.ndarray, idf: np.ndarray):
    """Sublinear-TF × IDF, L2-normalised rows (float32), of ``counts`` restricted to ``keep``."""
    X = counts[:, keep].astype(np.float32)
    X.data = 1.0 + np.log(X.data)
    X = X @ sp.diags(idf.astype(np.float32))
    return normalize(sp.csr_matrix(X), norm="l2", copy=False)


def _splits(n: int, y: np.ndarray, groups, folds: int, seed: int):
    dummy = np.zeros(n)
    if groups is None:
        return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(dummy, y))
    return list(StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(dummy, y, np.asarray(groups)))


def _folds_for(y: np.ndarray, folds: int) -> int:
    smallest = min(int((y == c).sum()) for c in np.unique(y))
    return max(2, min(folds, smallest))


def inner_bias(X, y, groups, *, C: float, folds: int = 3, seed: int = 1,
               class_weight: str | None = "balanced") -> np.ndarray:
    """Per-class bias for a model trained on feature matrix ``X`` (rows = messages, labels ``y``).

    Out-of-fold SVM decisions inside these rows only (``folds``-fold, grouped by ``groups`` when
    given), then :func:`tune_bias`; the rows' vectorisers are reused (fit on these rows only).
    """
    y = np.asarray(y)
    classes = np.unique(y)
    if len(classes) < 2 or min(int((y == c).sum()) for c in classes) < max(folds, BIAS_MIN_PER_CLASS):
        return np.zeros(len(classes))
    inner = np.zeros((len(y), len(classes)))
    for train, test in _splits(len(y), y, groups, _folds_for(y, folds), seed):
        svm = LinearSVC(C=C, class_weight=class_weight).fit(X[train], y[train])
        d = svm.decision_function(X[test])
        d = np.column_stack([-d, d]) if d.ndim == 1 else d
        pos = np.searchsorted(classes, svm.classes_)
        inner[np.ix_(test, pos)] = d
        missing = np.setdiff1d(np.arange(len(classes)), pos)
        if len(missing):
            inner[np.ix_(test, missing)] = -1e3
    return tune_bias(inner, y, classes)


def cross_validate(texts: list[str], labels, *, folds: int = 3, seed: int = 0, C: float = 0.5,
                   cut: list[str] | None = None, groups=None, bias: bool = False,
                   raw: list | None = None, views: list | None = None) -> tuple[Scores, np.ndarray, np.ndarray]:
    """Stratified ``folds``-fold cross-validation; returns (scores, out-of-fold decisions, classes).

    Every message is scored by a model that never saw it; with ``groups`` (e.g. from
    :func:`near_duplicate_groups`) the members of a group are always in the same fold
    (``StratifiedGroupKFold``), so neither did it see a near-copy. Classes with fewer members than
    ``folds`` are kept in training but cannot be stratified; ``folds`` is lowered to the smallest
    class size when needed (at least 2).

    With ``bias`` (off by default: it gave +0.003 macro-F1 with inner 3-fold, +0.008 with 4-fold, and
    cost 0.001 of top-3, while class weights give +0.007 for nothing) the per-class bias is *nested*: inside each training fold a 3-fold
    grouped CV of that fold alone gives out-of-fold decisions, :func:`tune_bias` fits the offsets
    on them, and only then is the held-out fold scored with them; the held-out fold never
    influences its own offsets. ``raw``, when a list, receives the decisions without the bias
    (n × classes), from which :func:`train_with_scores` fits the final model's offsets.
    ``views`` (from :func:`count_views`, computed here when not given) are the texts' term
    counts: each fold's vectorisers are fitted from its training rows' counts, as if on their texts.
    """
    y = np.asarray(labels)
    cut = cut if cut is not None else [words_of(t) for t in texts]
    classes = np.unique(y)
    folds = _folds_for(y, folds)
    decision = np.zeros((len(y), len(classes)))
    plain = np.zeros((len(y), len(classes)))
    g = None if groups is None else np.asarray(groups)
    views = views if views is not None else count_views(texts, cut)
    for train, test in _splits(len(y), y, g, folds, seed):
        r = Router(C=C)
        X = r.fit_counts(views, y, rows=train)
        Xt = sp.hstack([view_matrix(counts[test], *view_weights(counts, train, v.min_df))
                        for (counts, _names), v in zip(views, (r.chars, r.words), strict=True)]).tocsr()
        d = r.decision_of_matrix(Xt)
        pos = np.searchsorted(classes, r.classes)
        plain[np.ix_(test, pos)] = d
        if bias:
            d = d + inner_bias(X, y[train], None if g is None else g[train], C=C, class_weight=r.class_weight)
        decision[np.ix_(test, pos)] = d
        missing = np.setdiff1d(np.arange(len(classes)), pos)
        if len(missing):
            decision[np.ix_(test, missing)] = -1e3
            plain[np.ix_(test, missing)] = -1e3
    if raw is not None:
        raw.append(plain)
    return scores_of(y, decision, classes), decision, classes


def train_with_scores(texts: list[str], labels, *, folds: int = 3, C: float = 0.5,
                      bias: bool = False) -> tuple[Router, Scores, float]:
    """Cross-validate, fit per-class bias and confidence temperature out of fold, train on all.

    Returns (router, cross-validated scores, seconds taken). Words are cut once and reused;
    near-duplicate messages stay in one fold (:func:`near_duplicate_groups`), so the stored scores
    are those of messages whose copies the model never saw. With ``bias`` they include the
    per-class bias fitted *inside* each training fold (nested, :func:`cross_validate`) and the
    final model's offsets are fitted by :func:`tune_bias` on the plain out-of-fold decisions of
    all messages; the temperature is fitted on those decisions (plus the offsets).
    """
    start = time.monotonic()
    cut = [words_of(t) for t in texts]
    raw: list = []
    views = count_views(texts, cut)
    scores, decision, classes = cross_validate(texts, labels, folds=folds, C=C, cut=cut, views=views,
                                               groups=near_duplicate_groups(texts), raw=raw, bias=bias)
    router = Router(C=C)
    router.fit_counts(views, labels)
    pos = np.searchsorted(classes, router.classes)
    offsets = tune_bias(raw[0][:, pos], labels, router.classes) if bias else np.zeros(len(router.classes))
    router.set_bias(offsets if offsets.any() else None)
    router.calibrate(raw[0][:, pos] + offsets, labels)
    return router, scores, time.monotonic() - start


def scores_format(scores: Scores, *, title: str = "") -> str:
    """Return a plain-text report: macro/micro F1, top-3, per-class table and confusion table."""
    lines = []
    if title:
        lines.append(title)
    lines.append(f"messages: {scores.n}")
    lines.append(f"macro-F1: {scores.macro_f1:.4f}")
    lines.append(f"micro-F1: {scores.micro_f1:.4f}")
    lines.append(f"top-3 accuracy: {scores.top3:.4f}")
    lines.append("")
    width = max([len(str(x)) for x in scores.labels] + [5])
    lines.append(f"{'class':<{width}}  precision  recall     f1  support")
    for row in scores.per_class:
        lines.append(f"{row['label']:<{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  "
                     f"{row['f1']:.4f}  {row['support']:7d}")
    lines.append("")
    lines.append("confusion (rows: true, columns: predicted, in the class order above)")
    for i, row in enumerate(scores.confusion):
        lines.append(f"{str(scores.labels[i]):<{width}}  " + " ".join(f"{v:5d}" for v in row))
    return "\n".join(lines)
