"""Topic grouping and the heat index on real messages (casework/data/messages/fj3_with_votes.csv.gz).

The labelled set below was read by hand: each group is one issue raised by different messages;
different groups are different issues.
"""

from datetime import datetime
from pathlib import Path

from django.core.management import call_command
import pytest

from assessment.management.commands.topics_report import messages_read
from assessment.topics import Message, heat_index, topics_group

DATA = Path(__file__).resolve().parent.parent / "casework" / "data" / "messages" / "fj3_with_votes.csv.gz"

LABELLED = {
    "伊景园滨河苑捆绑销售车位": ["190337", "191001"],
    "丽发新城搅拌站扰民": ["189950", "190108"],
    "郝家坪小学改扩建": ["205960", "209742", "233743"],
    "月亮岛路架设高压线": ["218442", "231773"],
    "洪山公园何时建设": ["226168", "231690"],
}


@pytest.fixture(scope="module")
def real_messages():
    return messages_read(DATA)


def test_grouping_puts_near_duplicates_together_and_unrelated_issues_apart(real_messages):
    groups = topics_group(real_messages)
    topic_of = {m.id: n for n, g in enumerate(groups) for m in g.members}
    for label, ids in LABELLED.items():
        assert all(i in topic_of for i in ids), label
        assert len({topic_of[i] for i in ids}) == 1, f"{label} split across topics"
    firsts = [topic_of[ids[0]] for ids in LABELLED.values()]
    assert len(set(firsts)) == len(LABELLED), "two different issues were merged"


def test_heat_grows_with_distinct_citizens_votes_and_concentration():
    at = datetime(2019, 5, 1, 9, 0)
    one = [Message(id=i, subject="s", citizen="u1", submitted_at=at) for i in range(4)]
    many = [Message(id=i, subject="s", citizen=f"u{i}", submitted_at=at) for i in range(4)]
    liked = [Message(id=i, subject="s", citizen=f"u{i}", submitted_at=at, likes=50) for i in range(4)]
    spread = [Message(id=i, subject="s", citizen=f"u{i}", submitted_at=datetime(2019, 1 + 3 * i, 1))
              for i in range(4)]
    # V = 1 + 0.3·3 = 1.9 vs V = 4; W = ln(201) for 200 likes; C = 1 vs 1/4.
    assert heat_index(one) == pytest.approx(1.9 * 1.5)
    assert heat_index(many) == pytest.approx(4 * 1.5)
    assert heat_index(liked) == pytest.approx((4 + 2 * 5.303305) * 1.5, rel=1e-4)
    assert heat_index(spread) == pytest.approx(4 * 0.75)


def test_topics_report_prints_the_hottest_topics_of_the_real_file(capsys):
    call_command("topics_report", "--top", "3")
    out = capsys.readouterr().out
    assert out.startswith("4326 条留言")
    assert "伊景园滨河苑" in out
    assert out.count("热度") == 3
