"""The one reader of RFC 3339 times (annotations, API timestamps): UTC out, zone required."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kubectl_vcerts import timefmt


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2026-11-29T04:00:00Z", datetime(2026, 11, 29, 4, tzinfo=UTC), id="Go's RFC3339"),
        pytest.param(" 2026-11-29T04:00:00.123456Z", datetime(2026, 11, 29, 4, 0, 0, 123456, tzinfo=UTC),
                     id="MicroTime, with blanks around"),
        pytest.param("2026-11-29T05:00:00+01:00", datetime(2026, 11, 29, 4, tzinfo=UTC),
                     id="an offset is converted to UTC"),
        pytest.param("2026-11-29T04:00:00", None, id="a time without a zone cannot be placed"),
        pytest.param("yesterday", None, id="garbage"),
        pytest.param("", None, id="empty"),
    ],
)
def test_rfc3339_times_are_read_in_utc_and_zoneless_ones_refused(
    text: str, expected: datetime | None
) -> None:
    assert timefmt.parse_rfc3339(text) == expected


def test_what_we_write_is_what_we_read() -> None:
    when = datetime(2026, 12, 2, 19, 24, 54, tzinfo=UTC)
    assert timefmt.parse_rfc3339(timefmt.rfc3339(when)) == when
    assert timefmt.parse_rfc3339(timefmt.rfc3339_micro(when)) == when
