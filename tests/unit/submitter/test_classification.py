"""Which answers end a submission, which are retried, and how long the retries wait."""

import random

import pytest

from catalog_sync.submitter.classification import Answer, Decision, RetryPolicy, classify, first_error


@pytest.mark.parametrize(("status", "decision"), [
    (200, Decision.DONE), (429, Decision.THROTTLED), (500, Decision.RETRY), (503, Decision.RETRY),
    (502, Decision.RETRY), (504, Decision.RETRY), (400, Decision.FINAL), (404, Decision.FINAL),
    (413, Decision.FINAL), (415, Decision.FINAL), (None, Decision.RETRY),
])
def test_classification(status, decision):
    assert classify(Answer(status, failure=None if status else "timeout"), token_refreshed=False) is decision


def test_a_403_gets_one_token_refresh_then_is_final():
    assert classify(Answer(403), token_refreshed=False) is Decision.REFRESH_TOKEN
    assert classify(Answer(403), token_refreshed=True) is Decision.FINAL


def test_first_error_reads_amazon_errors_leniently():
    assert first_error({"errors": [{"code": "InvalidInput", "message": "Bad", "details": "sku too long"}]}) == \
        ("InvalidInput", "Bad (sku too long)")
    assert first_error({"errors": [{"message": "no code"}]}) == (None, "no code")
    assert first_error(None) == (None, None)
    assert first_error({"errors": "weird"}) == (None, None)


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=4.0)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert min(delays) >= ceiling / 2 and max(delays) <= ceiling
        assert len(set(delays)) > 100  # jittered, not lock-step


def test_retries_are_bounded_in_attempts_and_in_time():
    policy = RetryPolicy(max_attempts=3, max_elapsed_s=10.0)
    assert policy.allows(2, 0.0, 1.0)
    assert not policy.allows(3, 0.0, 1.0)
    assert not policy.allows(1, 9.5, 1.0)
