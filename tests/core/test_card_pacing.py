"""Unknown-card pacing (doorpi.core.lockout.CardPacer) and random UIDs
(doorpi.core.uid): other people's taps never block an enrolled card, a walker
of neighbouring UIDs still gets one guess per pause."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from doorpi.core.lockout import CardPacer, PacePolicy
from doorpi.core.uid import is_random_uid, random_uid_problem

POLICY = PacePolicy(after=5, window=900, pause=5)


def u(hex_uid: str) -> bytes:
    return bytes.fromhex(hex_uid)


# ---------------------------------------------------------------- random UIDs


def test_only_single_size_08_uids_are_random():
    assert is_random_uid(u("08a1b2c3"))
    assert is_random_uid(u("08000000"))
    assert not is_random_uid(u("04a1b2c3"))  # a fixed single-size UID
    assert not is_random_uid(u("88a1b2c3"))
    assert not is_random_uid(u("08a1b2c3d4e5f6"))  # 7 bytes: 08 is a manufacturer code
    assert not is_random_uid(u("08a1b2c3d4e5f60708a9"))  # 10 bytes
    assert not is_random_uid(b"\x08")


def test_random_uid_problem_names_the_uid_and_the_standard():
    line = random_uid_problem(u("08a1b2c3"))
    assert line is not None and line.startswith("08a1b2c3 is a random ID (ISO/IEC 14443-3)")
    assert "\n" not in line and "enrol a card" in line
    assert random_uid_problem(u("04a1b2c3")) is None


# ---------------------------------------------------------------- near / far


def slowed_pacer(base: int = 0x04AA11BB220000, n: int = 20, t0: float = 0.0) -> CardPacer:
    """A pacer just paused by ``n`` consecutive 7-byte unknown UIDs from ``base``."""
    p = CardPacer(POLICY)
    for i in range(n):
        p.unknown(t0 + i * 0.3, (base + i).to_bytes(7, "big"))
    return p


def test_a_tap_inside_a_walk_waits_any_other_is_checked():
    p = slowed_pacer()  # 20 consecutive unknown UIDs from 04aa11bb220000
    now = 19 * 0.3 + 0.3
    base = 0x04AA11BB220000
    assert p.wait(now) > 0  # the pause is on
    assert p.wait(now, (base + 70).to_bytes(7, "big")) > 0  # inside the walk
    assert p.neighbours((base + 65_536).to_bytes(7, "big")) == 20
    assert p.wait(now, (base + 65_536).to_bytes(7, "big")) > 0  # the upper edge: all 20 near
    assert p.wait(now, (base + 65_537).to_bytes(7, "big")) == 0  # 19 near: not a walk
    assert p.wait(now, (base + 19 - 65_536).to_bytes(7, "big")) > 0  # the lower edge
    assert p.wait(now, (base + 18 - 65_536).to_bytes(7, "big")) == 0
    assert p.wait(now, u("04c0ffee112233")) == 0  # another batch
    assert p.wait(now, u("04aa11bb")) == 0  # another length is never near


def test_uids_of_another_length_are_never_neighbours():
    p = CardPacer(POLICY)
    for i in range(20):
        p.unknown(i * 0.2, (0x1234 + i).to_bytes(7, "big"))
    assert p.wait(4.0, (0x1234).to_bytes(7, "big")) > 0
    assert p.wait(4.0, (0x1234).to_bytes(4, "big")) == 0  # the same number, 4 bytes


def test_a_queue_of_a_few_batch_mates_never_holds_a_resident_back():
    """Case 04's kind: five visitors' cards of the residents' own batch, then a resident."""
    p = CardPacer(POLICY)
    for i in range(5):
        p.unknown(i * 2.0, (0x04AA11BB22CC70 + i).to_bytes(7, "big"))
    assert p.wait(8.5) > 0  # the slow-down is on
    assert p.wait(8.5, (0x04AA11BB22CC77).to_bytes(7, "big")) == 0  # five neighbours: checked


def test_a_far_unknown_in_a_pause_is_counted_and_pauses_its_own_neighbours():
    p = slowed_pacer()
    far = u("04c0ffee112233")
    assert p.wait(1.5, far) == 0
    assert p.unknown(1.5, far)  # counted as usual: a new pause
    assert p.wait(6.0, u("04c0ffee112234")) == 0  # one neighbour is not a walk
    assert p.remembered() == 21


def test_uids_leave_with_the_window_and_the_memory_is_bounded():
    p = CardPacer(PacePolicy(after=5, window=900, pause=5, remember=100))
    for i in range(250):
        p.unknown(i * 0.1, (0x04000000000000 + i * 1_000_000).to_bytes(7, "big"))
    assert p.remembered() == 100
    assert p.neighbours((0x04000000000000).to_bytes(7, "big")) == 0  # the oldest were dropped
    assert p.neighbours((0x04000000000000 + 249 * 1_000_000).to_bytes(7, "big")) == 1
    p.wait(25 + 900, u("04000000000000"))
    assert p.remembered() == 0 and not p.slowed(25 + 900)


def test_a_walker_through_an_enrolled_uid_is_still_slowed_to_one_guess_per_pause():
    enrolled = 0x04AA11BB22CC77
    p = CardPacer(POLICY)
    t, checked, rate_limited_on_enrolled = 0.0, 0, 0
    uid = enrolled - 300
    while uid <= enrolled + 10:  # one neighbour every 0.3 s
        b = uid.to_bytes(7, "big")
        if p.wait(t, b) == 0:
            checked += 1
            if uid != enrolled:
                p.unknown(t, b)
        elif uid == enrolled:
            rate_limited_on_enrolled += 1
        uid += 1
        t += 0.3
    assert rate_limited_on_enrolled == 1  # it reached the card during a pause: unchecked
    assert checked <= POLICY.walk + t / 5 + 1


# ---------------------------------------------------------------- properties

uid7 = st.integers(0x04000000000000, 0x04FFFFFFFFFFFF)
ENROLLED = 0x04AA11BB22CC77
# Unknown taps: random 7- or 4-byte UIDs, or the enrolled card's batch mates (some
# within ``near`` of it, some just outside), at human or machine pace.
taps = st.lists(
    st.tuples(
        st.floats(0.0, 5.0),
        st.one_of(
            uid7,
            st.integers(0, 2**32 - 1),
            st.integers(-70_000, 70_000)
            .map(lambda d: ENROLLED + d)
            .filter(lambda v: v != ENROLLED),
        ),
    ),
    min_size=1,
    max_size=80,
)


def _as_bytes(v: int) -> bytes:
    return v.to_bytes(7 if v >= 2**32 else 4, "big")


@settings(max_examples=400, deadline=None)
@given(taps, st.floats(0.0, 10.0))
def test_an_enrolled_uid_is_held_back_only_inside_a_walk(seq, after):
    """Whatever unknown cards came before, the enrolled UID is checked (wait == 0)
    unless at least ``walk`` unknown UIDs of the window lie within ``near`` of it;
    inside a walk it waits out the pause, like every other tap there."""
    enrolled = ENROLLED
    p = CardPacer(POLICY)
    seen: list[tuple[float, bytes]] = []
    t = 0.0
    for dt, v in seq:
        t += dt
        b = _as_bytes(v)
        if p.wait(t, b) == 0:
            p.unknown(t, b)
            seen.append((t, b))
    now = t + after
    card = enrolled.to_bytes(7, "big")
    near = sum(
        1
        for at, b in seen
        if now - at < POLICY.window
        and len(b) == 7
        and abs(int.from_bytes(b, "big") - enrolled) <= POLICY.near
    )
    if near < POLICY.walk:
        assert p.wait(now, card) == 0
    else:
        assert p.wait(now, card) == p.wait(now)  # a neighbour waits out the pause


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 2**16), min_size=21, max_size=120), st.floats(0.05, 2.0))
def test_neighbour_guesses_never_exceed_one_per_pause(offsets, step):
    """A walker whose every guess is near the first: at most ``walk`` guesses,
    then one per pause."""
    p = CardPacer(POLICY)
    base = 0x04AA11BB220000
    t, checked = 0.0, 0
    for off in offsets:
        b = (base + off).to_bytes(7, "big")
        if p.wait(t, b) == 0:
            checked += 1
            p.unknown(t, b)
        t += step
    assert checked <= POLICY.walk + t / POLICY.pause + 1
