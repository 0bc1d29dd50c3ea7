"""Named instants for table tests, in the manner of the CronJob controller's tests.

Every test that needs "now" takes one of these, so no test reads the wall clock and every
expected value can be computed by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

TOP_OF_THE_HOUR = datetime(2026, 6, 1, 10, 0, 0, tzinfo=UTC)  # a Monday
JUST_BEFORE_THE_HOUR = TOP_OF_THE_HOUR - timedelta(minutes=1)
JUST_AFTER_THE_HOUR = TOP_OF_THE_HOUR + timedelta(seconds=2)
HALF_PAST = TOP_OF_THE_HOUR + timedelta(minutes=30)
WEEK_AFTER_THE_HOUR = TOP_OF_THE_HOUR + timedelta(days=7)

# Europe/Berlin switches to summer time at 01:00 UTC on the last Sunday of March (02:00 local
# becomes 03:00) and back at 01:00 UTC on the last Sunday of October (03:00 becomes 02:00).
BERLIN_SPRING_FORWARD = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
BERLIN_FALL_BACK = datetime(2026, 10, 25, 1, 0, tzinfo=UTC)
