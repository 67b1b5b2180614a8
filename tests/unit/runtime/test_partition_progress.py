"""The commit point of the consumer loop: only the contiguous completed prefix of a partition is committed."""

from catalog_sync.runtime.consumer_loop import PartitionProgress


def test_commit_point_waits_for_the_oldest_message_in_flight():
    progress = PartitionProgress()
    for offset in (10, 11, 12, 13):
        progress.started(offset)
    progress.finished(12)
    progress.finished(11)
    assert progress.to_commit() is None and progress.in_flight == 2
    progress.finished(10)
    assert progress.to_commit() == 13  # 10, 11, 12 done: next to read is 13
    progress.committed = 13
    assert progress.to_commit() is None
    progress.finished(13)
    assert progress.to_commit() == 14 and progress.in_flight == 0


def test_gaps_in_offsets_are_fine():
    progress = PartitionProgress()
    for offset in (5, 9):  # compacted or transactional topics skip offsets
        progress.started(offset)
    progress.finished(9)
    assert progress.to_commit() is None
    progress.finished(5)
    assert progress.to_commit() == 10
