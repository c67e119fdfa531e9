from shared.kafka.offsets import OffsetTracker

P = ("topic", 0)
Q = ("topic", 1)


class TestOffsetTracker:
    def test_commits_nothing_before_anything_was_seen(self):
        assert OffsetTracker().to_commit() == {}

    def test_commits_the_lowest_unfinished_offset_when_work_finishes_out_of_order(self):
        t = OffsetTracker()
        for offset in range(10, 15):
            t.started(P, offset)
        t.finished(P, 12)
        t.finished(P, 14)
        assert t.to_commit() == {P: 10}
        t.finished(P, 10)
        assert t.to_commit() == {P: 11}
        t.finished(P, 11)
        assert t.to_commit() == {P: 13}
        t.finished(P, 13)
        assert t.to_commit() == {P: 15}

    def test_does_not_repeat_a_commit_that_did_not_move(self):
        t = OffsetTracker()
        t.started(P, 0)
        t.finished(P, 0)
        positions = t.to_commit()
        t.mark_committed(positions)
        assert t.to_commit() == {}

    def test_partitions_are_independent(self):
        t = OffsetTracker()
        t.started(P, 5)
        t.started(Q, 7)
        t.finished(Q, 7)
        assert t.to_commit() == {P: 5, Q: 8}
        assert t.in_flight() == 1

    def test_forgetting_a_revoked_partition_drops_its_state(self):
        t = OffsetTracker()
        t.started(P, 1)
        t.forget([P])
        t.finished(P, 1)  # a late finish of revoked work is harmless
        assert t.to_commit() == {}

    def test_random_completion_orders_never_commit_past_unfinished_work(self):
        import random

        rng = random.Random(7)
        for _ in range(200):
            t = OffsetTracker()
            offsets = list(range(50))
            for o in offsets:
                t.started(P, o)
            order = offsets[:]
            rng.shuffle(order)
            done: set[int] = set()
            for o in order:
                t.finished(P, o)
                done.add(o)
                position = t.committable(P)
                assert all(x in done for x in range(position)), "committed past unfinished work"
                assert position not in done or position == 50
            assert t.committable(P) == 50
