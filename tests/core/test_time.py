"""Time in the core: the clock guard against jumps, overnight windows, site-local dates."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from doorpi.core.clock import AHEAD, BEHIND, MAX_OFFLINE_SECONDS, OK, ClockGuard
from doorpi.core.policy import Moment, Reason, ResidentView, check_resident
from doorpi.core.schedule import Schedule
from doorpi.sitetime import TimeZoneError, parse_local, show, zone

T = 1_772_438_400.0  # 2026-03-02 08:00 UTC, a Monday
Y2040 = 2_209_104_000.0  # 2040-01-02 08:00 UTC
BERLIN, NEW_YORK, SHANGHAI = (
    ZoneInfo("Europe/Berlin"),
    ZoneInfo("America/New_York"),
    ZoneInfo("Asia/Shanghai"),
)

# ---------------------------------------------------------------- clock guard


def test_jump_to_2040_and_back_never_raises_the_floor():
    """Case 03: a bad RTC read for a minute, then the clock is set right."""
    g = ClockGuard(floor=T - 600)
    assert g.observe(T, 0).trusted
    r = g.observe(Y2040, 1)
    assert (r.trusted, r.state, r.effective) == (False, AHEAD, T + 1)
    assert r.jumped_by == pytest.approx(Y2040 - T - 1)
    r = g.observe(Y2040 + 59, 60)  # still wrong: no second report, still untrusted
    assert (r.trusted, r.jumped_by, r.effective) == (False, 0.0, T + 60)
    assert g.floor == T + 60  # only what monotonic time vouches for
    r = g.observe(T + 61, 61)  # set right again
    assert r.trusted and r.state == OK and r.jumped_by < 0 and g.floor == T + 61


def test_jump_ahead_is_untrusted_until_the_wall_clock_agrees_again():
    g = ClockGuard(floor=T)
    g.observe(T, 0)
    assert not g.observe(T + 86400, 10).trusted  # a day ahead: mistyped date -s
    assert not g.observe(T + 86400 + 3600, 3610).trusted  # an hour later, still a day ahead
    assert g.observe(T + 3620, 3620).trusted  # corrected: within slack of floor + elapsed


def test_small_drift_and_ntp_steps_within_slack_stay_trusted():
    g = ClockGuard(floor=T)
    g.observe(T, 0)
    assert g.observe(T + 3600 + 100, 3600).trusted  # 100 s ahead after an hour
    assert g.observe(T + 3700 + 100 - 90, 3700).trusted  # NTP steps it back 90 s


def test_clock_set_back_keeps_the_floor_and_runs_on_monotonic_time():
    g = ClockGuard(floor=T)
    g.observe(T + 60, 60)
    r = g.observe(0.0, 70)  # reset to 1970
    assert (r.trusted, r.state, r.effective) == (False, BEHIND, T + 70)
    r = g.observe(10.0, 80)
    assert r.effective == T + 80 and g.floor == T + 80  # rollback protection holds


@pytest.mark.parametrize(
    "wall,trusted",
    [
        (T, True),  # fake-hwclock: boots at its floor
        (T - 100, True),  # within slack
        (T - 1000, False),  # behind the floor
        (T + 5 * 86400, True),  # RTC after a five-day power cut
        (T + MAX_OFFLINE_SECONDS + 1, False),  # longer than the gate can vouch for
        (Y2040, False),  # garbage RTC read
    ],
)
def test_first_reading_after_start_is_bounded_by_the_floor(wall, trusted):
    g = ClockGuard(floor=T)
    r = g.observe(wall, 5)
    assert r.trusted is trusted
    if not trusted:
        assert r.effective == T and g.floor == T
        assert (r.jumped_by > 0) is (wall > T)  # an implausible jump ahead is reported


def test_first_start_without_a_floor_trusts_the_clock():
    r = ClockGuard(floor=0.0).observe(T, 0)
    assert r.trusted and r.effective == T


def test_bundle_time_is_bounded_by_what_the_gate_can_vouch_for():
    g = ClockGuard(floor=T)
    g.observe(T, 0)
    assert not g.offer(Y2040, 10)  # a laptop clock at 2040
    assert g.floor == T and g.observe(T + 20, 20).trusted
    assert g.offer(T + 7 * 86400, 30)  # the gate's clock is a week slow: the laptop's wins
    assert g.floor == T + 7 * 86400
    r = g.observe(T + 40, 40)
    assert not r.trusted and r.effective == T + 7 * 86400
    assert ClockGuard(floor=0.0).offer(Y2040, 0)  # no floor yet: nothing to bound against


def test_repair_lowers_a_poisoned_floor_and_trust_resumes():
    g = ClockGuard(floor=Y2040)  # poisoned by an older version or a laptop at 2040
    r = g.observe(T, 0)
    assert not r.trusted and r.effective == Y2040
    g.reset(T)
    r = g.observe(T + 1, 1)
    assert r.trusted and g.floor == T + 1


def test_untrusted_clock_decides_validity_on_vouched_time():
    """While the clock is ahead, a tenancy that has not ended is not refused as expired,
    and a schedule resident is refused as clock_untrusted, not let in at the wrong hour."""
    g = ClockGuard(floor=T)
    g.observe(T, 0)
    r = g.observe(Y2040, 1)
    at = Moment(r.effective, datetime.fromtimestamp(r.effective, SHANGHAI), r.trusted)
    tenant = ResidentView(1, valid_until=parse_local("2027-06-30", SHANGHAI, until=True))
    assert check_resident(tenant, at, {}) is None
    sched = {"workdays": Schedule.parse("workdays", ["mon-fri 07:00-19:00"])}
    cleaner = ResidentView(2, schedule="workdays")
    assert check_resident(cleaner, at, sched) == Reason.CLOCK_UNTRUSTED


# ---------------------------------------------------------------- overnight windows


def test_overnight_window_runs_past_midnight():
    night = Schedule.parse("night", ["daily 22:00-06:00"])
    assert night.allows(datetime(2026, 3, 2, 22, 0))
    assert night.allows(datetime(2026, 3, 2, 23, 59))
    assert night.allows(datetime(2026, 3, 3, 0, 0))
    assert night.allows(datetime(2026, 3, 3, 5, 59))
    assert not night.allows(datetime(2026, 3, 3, 6, 0))  # end is exclusive
    assert not night.allows(datetime(2026, 3, 2, 21, 59))
    assert not night.allows(datetime(2026, 3, 2, 12, 0))
    assert not night.is_always


def test_overnight_window_belongs_to_the_day_it_starts():
    fri = Schedule.parse("x", ["fri 22:00-06:00"])
    assert fri.allows(datetime(2026, 3, 6, 23, 0))  # Friday night
    assert fri.allows(datetime(2026, 3, 7, 5, 0))  # Saturday morning
    assert not fri.allows(datetime(2026, 3, 6, 5, 0))  # Friday morning: Thursday's night
    sun = Schedule.parse("x", ["sun 22:00-02:00"])
    assert sun.allows(datetime(2026, 3, 9, 1, 0))  # Monday 01:00 wraps from Sunday


def test_schedules_follow_local_time_across_dst():
    """07:00-19:00 is 07:00-19:00 on the wall clock in winter and in summer."""
    s = Schedule.parse("w", ["daily 07:00-19:00"])
    for tz in (BERLIN, NEW_YORK):
        for day in (date(2026, 1, 15), date(2026, 7, 15)):
            open_at = datetime.combine(day, datetime.min.time(), tz).replace(hour=7)
            assert s.allows(open_at.astimezone(tz))
            assert not s.allows((open_at - timedelta(minutes=1)).astimezone(tz))
    # New York springs forward on 2026-03-08 at 02:00: 06:59 and 07:00 EDT are one minute apart.
    t = datetime(2026, 3, 8, 6, 59, tzinfo=NEW_YORK).timestamp()
    assert not s.allows(datetime.fromtimestamp(t, NEW_YORK))
    assert s.allows(datetime.fromtimestamp(t + 60, NEW_YORK))


# ---------------------------------------------------------------- site-local dates


@pytest.mark.parametrize("tz", [SHANGHAI, BERLIN, NEW_YORK, ZoneInfo("Etc/UTC")])
def test_until_a_date_means_through_that_local_day(tz):
    until = parse_local("2027-06-30", tz, until=True)
    assert until == datetime(2027, 7, 1, tzinfo=tz).timestamp()
    assert parse_local(date(2027, 6, 30), tz, until=True) == until  # TOML date: the same
    assert parse_local("2027-06-30", tz) == datetime(2027, 6, 30, tzinfo=tz).timestamp()
    assert (
        parse_local("2027-06-30T18:00", tz, until=True)
        == datetime(2027, 6, 30, 18, tzinfo=tz).timestamp()
    )
    assert show(until, tz, until=True) == "2027-06-30 24:00"


def test_dst_days_are_23_and_25_hours_long():
    spring = parse_local("2026-03-29", BERLIN, until=True) - parse_local("2026-03-29", BERLIN)
    autumn = parse_local("2026-10-25", BERLIN, until=True) - parse_local("2026-10-25", BERLIN)
    assert (spring, autumn) == (23 * 3600, 25 * 3600)


def test_shanghai_is_eight_hours_ahead_of_utc():
    t = parse_local("2026-03-02T08:30", SHANGHAI)
    assert datetime.fromtimestamp(t, ZoneInfo("UTC")).hour == 0


@pytest.mark.parametrize("bad", ["2027-02-30", "30.06.2027", "", "tomorrow", None, 5])
def test_bad_dates_are_refused_with_the_value(bad):
    with pytest.raises(ValueError, match="is not a date like 2027-06-30"):
        parse_local(bad, SHANGHAI)


@pytest.mark.parametrize("name", ["Mars/Base", "asia/shanghai", "/etc/localtime", "../x", ""])
def test_unknown_zone_names_are_refused(name):
    with pytest.raises(TimeZoneError):
        zone(name)
