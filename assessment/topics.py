"""Grouping similar messages into topics (共性问题) and the heat index. Pure functions, no database.

Grouping (DESIGN.md §6):

1. Text: the subject three times plus the first 120 characters of the body, segmented with jieba;
   stop words, single characters and pure numbers are dropped.
2. TF-IDF vectors (scikit-learn ``TfidfVectorizer``, sublinear tf, l2-normalised) and cosine
   similarity between all pairs (one sparse matrix product).
3. Two messages are linked when their similarity is at least ``threshold`` (default 0.35); links
   become groups by average-linkage agglomeration: a message joins a group only if its mean
   similarity to the group's members stays above ``threshold`` × ``cohesion`` — so one bridging
   message cannot chain two different issues together.

Heat index of a topic (documented formula, all inputs from the messages):

    heat = (V + 2·W) · (0.5 + C)

    V = u + 0.3·(n − u)             n messages from u distinct citizens: a repeat poster adds less
    W = ln(1 + L) + 0.5·ln(1 + D)   L likes and D dislikes summed over the messages (attention)
    C = n₃₀ / n                     share of the messages within the busiest 30 days (0 < C ≤ 1)

so a topic counts more when more different people raise it, when others support it, and when it
flares up at once rather than trickling in over years.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
import math
import re

import jieba

jieba.setLogLevel(60)

STOP_WORDS = set(
    """
    的 了 在 是 我 我们 你 你们 他 她 它 他们 有 和 与 及 或 也 都 就 而 但 还 又 被 把 对 于 从 到 向 为 以 之
    这 那 这个 那个 这些 那些 这里 那里 什么 怎么 怎样 如何 为什么 哪里 哪些 是否 能否 可否 可以 能 会 要 想 请
    请问 请求 希望 要求 建议 反映 咨询 关于 问题 情况 有关 相关 部门 领导 政府 市 区 县 一个 一些 没有 不 没
    已经 现在 目前 今年 去年 时候 时间 年 月 日 号 等 等等 及时 尽快 进行 处理 解决 给予 予以 得到 一下 谢谢
    您好 你好 尊敬 市长 书记 局长 严重 非常 很 太 更 最 再 因为 所以 如果 虽然 但是 并且 以及 其 该 此 个 些
    里 中 上 下 内 外 前 后 大 小 多 少 new
    """.split()
)

_NUMBER = re.compile(r"^[\d.%％]+$")


def tokenize(text: str) -> list[str]:
    """Segment Chinese ``text`` with jieba and drop stop words, single characters and numbers."""
    out = []
    for tok in jieba.lcut(text):
        tok = tok.strip()
        if len(tok) < 2 or tok in STOP_WORDS or _NUMBER.match(tok):
            continue
        out.append(tok)
    return out


@dataclass
class Message:
    """One message as the grouping sees it."""

    id: object
    subject: str
    body: str = ""
    submitted_at: datetime | None = None
    citizen: str = ""
    likes: int = 0
    dislikes: int = 0


@dataclass
class TopicGroup:
    """A group of similar messages with its heat and describing keywords."""

    members: list[Message]
    similarity: list[float]
    keywords: list[str] = field(default_factory=list)
    heat: float = 0.0

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def citizens(self) -> int:
        return len({m.citizen or f"#{m.id}" for m in self.members})

    @property
    def title(self) -> str:
        """The subject of the most central member."""
        best = max(range(len(self.members)), key=lambda i: self.similarity[i])
        return self.members[best].subject


def heat_index(messages: list[Message]) -> float:
    """Return the heat of a group of messages (formula in the module docstring)."""
    n = len(messages)
    if n == 0:
        return 0.0
    u = len({m.citizen or f"#{m.id}" for m in messages})
    volume = u + 0.3 * (n - u)
    likes = sum(max(m.likes or 0, 0) for m in messages)
    dislikes = sum(max(m.dislikes or 0, 0) for m in messages)
    votes = math.log1p(likes) + 0.5 * math.log1p(dislikes)
    times = sorted(m.submitted_at for m in messages if m.submitted_at is not None)
    if times:
        best, j = 0, 0
        for i, t in enumerate(times):
            while times[j] < t - timedelta(days=30):
                j += 1
            best = max(best, i - j + 1)
        concentration = best / n
    else:
        concentration = 1.0
    return (volume + 2 * votes) * (0.5 + concentration)


def _document(m: Message) -> list[str]:
    return tokenize(m.subject) * 3 + tokenize((m.body or "")[:120])


def topics_group(messages: list[Message], *, threshold: float = 0.35, cohesion: float = 0.8,
                 min_size: int = 2) -> list[TopicGroup]:
    """Group ``messages`` into topics, hottest first (algorithm in the module docstring).

    Args:
        threshold: cosine similarity (0–1) at which two messages are about the same issue.
        cohesion: factor on ``threshold`` for the mean similarity of a joining message to a group.
        min_size: smallest group reported (a lone message is not a topic).

    Returns:
        groups with at least ``min_size`` messages, each with its heat and top keywords.
    """
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    if len(messages) < 2:
        return []
    docs = [_document(m) for m in messages]
    vectorizer = TfidfVectorizer(analyzer=lambda d: d, sublinear_tf=True, min_df=1)
    matrix = vectorizer.fit_transform(docs)
    sim = (matrix @ matrix.T).tocsr()
    sim.data[sim.data < threshold * cohesion] = 0
    sim.eliminate_zeros()
    # Candidate links, strongest first; union groups under the average-similarity condition.
    coo = sim.tocoo()
    mask = (coo.row < coo.col) & (coo.data >= threshold)
    order = np.argsort(-coo.data[mask], kind="stable")
    rows, cols = coo.row[mask][order], coo.col[mask][order]
    group_of = list(range(len(messages)))
    members: dict[int, list[int]] = {i: [i] for i in range(len(messages))}

    def mean_link(a: list[int], b: list[int]) -> float:
        block = sim[a][:, b]
        return float(block.sum()) / (len(a) * len(b))

    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        gi, gj = group_of[i], group_of[j]
        if gi == gj:
            continue
        a, b = members[gi], members[gj]
        if len(a) * len(b) > 1 and mean_link(a, b) < threshold * cohesion:
            continue
        if len(a) < len(b):
            gi, gj, a, b = gj, gi, b, a
        a.extend(b)
        for k in b:
            group_of[k] = gi
        del members[gj]
    vocab = np.array(vectorizer.get_feature_names_out())
    groups = []
    for idx in members.values():
        if len(idx) < min_size:
            continue
        block = sim[idx][:, idx]
        centrality = np.asarray(block.sum(axis=1)).ravel() / len(idx)
        weights = np.asarray(matrix[idx].sum(axis=0)).ravel()
        top = [str(vocab[k]) for k in np.argsort(-weights)[:5] if weights[k] > 0]
        msgs = [messages[k] for k in idx]
        groups.append(TopicGroup(members=msgs, similarity=centrality.tolist(), keywords=top,
                                 heat=heat_index(msgs)))
    groups.sort(key=lambda g: (-g.heat, -g.size))
    return groups


def keywords_counter(groups: list[TopicGroup]) -> Counter:
    """Return how often each keyword names a group (a quick check that topics differ)."""
    return Counter(k for g in groups for k in g.keywords)
