"""China Standard Time (北京时间), which has no daylight saving.

Days, months and years of the medical-insurance calendar are counted in it, and times shown
to people (policy versions, the earliest day a binding may end) are written in it. On the
wire times stay google.protobuf.Timestamp, which carries no zone."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")


def shown(moment: datetime) -> str:
    """A moment as people in China read it: ISO 8601 with the +08:00 offset."""
    return moment.astimezone(CHINA_STANDARD_TIME).isoformat()
