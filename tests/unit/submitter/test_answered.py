"""The memory of answered ListingReady events that lets a replay skip a second SP-API call."""

from catalog_sync.submitter.answered import AnsweredEvents


def test_answers_are_found_by_event_id_and_the_oldest_are_forgotten_first():
    answered = AnsweredEvents(capacity=2)
    answered.put("e1", ["out-1"])
    answered.put("e2", ["out-2"])
    answered.put("e1", ["out-1"])  # answered again: now the most recent
    answered.put("e3", ["out-3"])
    assert (answered.get("e1"), answered.get("e2"), answered.get("e3")) == (["out-1"], None, ["out-3"])
    assert len(answered) == 2


def test_an_event_without_an_id_is_never_remembered():
    answered = AnsweredEvents()
    answered.put(None, ["out"])
    assert answered.get(None) is None and len(answered) == 0
