"""The Email Log's delivery summary: its numbers are the rows' counts, its percentiles are
right, its buckets survive daylight-saving changes, and its links filter the log to match."""

import re
import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from sender.models import Connection, OutboxMessage, Status
from settings_app.delivery_summary import PERIODS, bucket_starts, summarise
from tests.delivery_log import AUTH_FAILED, AUTH_HINT, fill_delivery_log
from tests.log_rows import LOG_URL, logged_message

pytestmark = pytest.mark.django_db

NUMBER_COLUMNS = ("sent", "retrying", "failed", "waiting", "primary", "backup")


def cells(html: str, testid: str) -> list[list[str]]:
    """The text of each cell of the rows marked ``testid`` in the numbers table."""
    rows = re.findall(rf'<tr data-testid="{testid}">(.*?)</tr>', html, re.S)
    return [
        [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        for row in rows
    ]


def figure(html: str, name: str) -> str:
    found = re.search(rf'data-figure="{name}"[^>]*>([^<]*)<', html)
    assert found is not None, f"no figure {name} on the page"
    return found.group(1).strip()


def expected_counts(start: datetime, key) -> dict[object, Counter]:
    """Per bucket key, counted one row at a time in Python (not by the summary's queries)."""
    counts: dict[object, Counter] = {}
    for row in OutboxMessage.objects.filter(queued_at__gte=start):
        tally = counts.setdefault(key(timezone.localtime(row.queued_at)), Counter())
        waiting: dict[str, str] = {Status.QUEUED: "waiting", Status.SENDING: "waiting"}
        status = waiting.get(row.status, row.status)
        tally[status] += 1
        if row.status == Status.SENT:
            tally[row.connection] += 1
    return counts


@pytest.mark.parametrize(
    ("period", "key"),
    [
        ("24h", lambda local: local.strftime("%a %b %-d, %H:00")),
        ("7d", lambda local: local.strftime("%a %b %-d")),
    ],
)
def test_the_page_and_its_table_show_the_rows_counts(admin_client, period, key):
    fill_delivery_log(timezone.now(), days=8)
    response = admin_client.get(LOG_URL, {"summary": period})
    html = response.content.decode()
    overview = response.context["overview"]
    expected = expected_counts(overview.start, key)
    table = cells(html, "numbers-row")
    assert len(table) == PERIODS[period].count
    for name, *numbers in table:
        tally = expected.pop(name.split("\u2013")[0] if period == "24h" else name, Counter())
        assert [int(n) for n in numbers[:6]] == [tally[c] for c in NUMBER_COLUMNS], name
    assert not expected  # every row queued in the period is in a bucket
    total = Counter()
    for row in OutboxMessage.objects.filter(queued_at__gte=overview.start):
        total[row.status] += 1
    assert figure(html, "sent") == str(total[Status.SENT])
    assert figure(html, "failed") == str(total[Status.FAILED])
    assert figure(html, "retrying") == str(total[Status.RETRYING])
    [footer] = cells(html, "numbers-total")
    assert footer[1:5] == [str(total[s]) for s in ("sent", "retrying", "failed")] + [
        str(total[Status.QUEUED] + total[Status.SENDING])
    ]
    rate = 100 * total[Status.FAILED] / (total[Status.SENT] + total[Status.FAILED])
    assert figure(html, "failure-rate") == f"{rate:.1f}% of finished"
    waiting = OutboxMessage.objects.filter(
        status__in=(Status.QUEUED, Status.SENDING, Status.RETRYING)
    ).count()
    assert figure(html, "waiting-now") == f"{waiting} waiting"


def test_delivery_time_p50_and_p95_match_a_computation(admin_client):
    now = timezone.now().replace(minute=30)
    durations = [0.8, 1.5, 2, 2, 3.25, 4, 7, 9, 12, 30, 45, 61, 300, 900]
    for seconds in durations:
        queued = now - timedelta(hours=2)
        logged_message(queued_at=queued, sent_at=queued + timedelta(seconds=seconds))
    logged_message(
        queued_at=now - timedelta(hours=5), sent_at=now - timedelta(hours=5, seconds=-10)
    )
    summary = summarise("24h", now)
    two_hours_ago = summary.buckets[-3]
    percentiles = statistics.quantiles(durations, n=100, method="inclusive")
    assert two_hours_ago.p50 == pytest.approx(percentiles[49])
    assert two_hours_ago.p95 == pytest.approx(percentiles[94])
    everything = statistics.quantiles([*durations, 10], n=100, method="inclusive")
    assert summary.p50 == pytest.approx(everything[49])
    assert summary.p95 == pytest.approx(everything[94])
    assert summary.buckets[-1].p50 is None  # nothing sent: no figure, not zero


@pytest.mark.db_sensitive
def test_percentiles_are_the_same_on_this_database(admin_client):
    """Run on PostgreSQL too (percentile_cont there, Python on SQLite)."""
    test_delivery_time_p50_and_p95_match_a_computation(admin_client)


def hourly_messages(first: datetime, hours: int) -> None:
    for hour in range(hours):
        logged_message(queued_at=first + timedelta(hours=hour, minutes=30))


@pytest.mark.db_sensitive
@pytest.mark.parametrize(
    ("now", "buckets", "double"),
    [
        # Spring: 02:00 does not exist on 29 March 2026 in Berlin (01:00 UTC becomes 03:00).
        (datetime(2026, 3, 29, 10, 45, tzinfo=UTC), 24, None),
        # Autumn: 02:00 happens twice on 25 October 2026 (00:00 and 01:00 UTC).
        (datetime(2026, 10, 25, 10, 45, tzinfo=UTC), 23, "02:00"),
    ],
)
def test_a_daylight_saving_change_neither_doubles_nor_drops_an_hour(settings, now, buckets, double):
    settings.TIME_ZONE = "Europe/Berlin"
    hourly_messages(now - timedelta(hours=23, minutes=45), 24)  # one at :30 of each real hour
    summary = summarise("24h", now)
    labels = [bucket.label for bucket in summary.buckets]
    names = [bucket.name for bucket in summary.buckets]  # with the day: 12:00 may be on both
    assert len(names) == len(set(names)) == buckets
    assert ("02:00" in labels) == (double is not None)
    assert summary.queued == 24
    for bucket in summary.buckets:
        assert bucket.total == (2 if bucket.label == double else 1), bucket.label


@pytest.mark.db_sensitive
@pytest.mark.parametrize("day", [29, 30])  # the day after a 23-hour day, and after it
def test_days_across_a_daylight_saving_change_are_local_days(settings, day):
    settings.TIME_ZONE = "Europe/Berlin"
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime(2026, 3, 27, tzinfo=berlin)
    hourly_messages(start.astimezone(UTC), 24 * 4)
    now = datetime(2026, 3, day, 23, 0, tzinfo=berlin)
    summary = summarise("7d", now)
    by_day = {bucket.start.date(): bucket.total for bucket in summary.buckets}
    assert len(by_day) == 7
    assert by_day[datetime(2026, 3, 28).date()] == 24
    assert by_day[datetime(2026, 3, 29).date()] == 23  # the clocks went forward
    local_starts = {timezone.localtime(b.start).strftime("%H:%M") for b in summary.buckets}
    assert local_starts == {"00:00"}


def test_bucket_starts_follow_the_local_clock():
    berlin = ZoneInfo("Europe/Berlin")
    starts = bucket_starts(PERIODS["24h"], datetime(2026, 10, 25, 2, 30, tzinfo=UTC), berlin)
    assert [s.strftime("%H") for s in starts[-4:]] == ["00", "01", "02", "03"]


def test_an_empty_period_says_so(admin_client):
    logged_message(queued_at=timezone.now() - timedelta(days=3))
    html = admin_client.get(LOG_URL).content.decode()
    assert 'data-testid="summary-empty"' in html
    assert "No mail was queued in the last 24 hours" in html
    assert "No message failed in the last 24 hours" in html
    html = admin_client.get(LOG_URL, {"summary": "7d"}).content.decode()
    assert 'data-testid="summary-empty"' not in html and "<svg" in html


def test_the_period_is_kept_in_the_url_with_the_other_filters(admin_client):
    html = admin_client.get(LOG_URL, {"summary": "30d", "status": "failed"}).content.decode()
    assert "Delivery, last 30 days" in html
    assert 'href="?status=failed&amp;summary=7d"' in html
    assert '<input type="hidden" name="summary" value="30d">' in html
    assert "Delivery, last 24 hours" in admin_client.get(LOG_URL, {"summary": "x"}).content.decode()


def test_charts_have_names_and_tooltips(admin_client):
    fill_delivery_log(timezone.now(), days=1)
    html = admin_client.get(LOG_URL).content.decode()
    assert html.count('role="img"') == 3
    assert (
        '<title id="chart-outcomes-title">Messages queued per hour, last 24 hours, by outcome</title>'
        in html
    )
    assert re.search(r"<title>\w{3} \w{3} \d+, \d\d:00\u2013\d\d:\d\d: \d+ sent, ", html)
    assert "Show the numbers</summary>" in html


def test_the_failures_that_matter_link_to_the_log_filtered_to_them(admin_client):
    fill_delivery_log(timezone.now(), days=2)
    response = admin_client.get(LOG_URL)
    overview = response.context["overview"]
    failed = OutboxMessage.objects.filter(status=Status.FAILED, queued_at__gte=overview.start)
    bounce = sum(1 for row in failed if "@bounce.example" in row.to.lower())
    assert ("bounce.example", bounce) in overview.top_domains
    auth = [group for group in overview.top_errors if group.error == AUTH_FAILED]
    assert (
        auth[0].hint == AUTH_HINT
        and auth[0].messages == failed.filter(last_error=AUTH_FAILED).count()
    )
    since = overview.start.isoformat()
    by_domain = admin_client.get(
        LOG_URL, {"status": "failed", "domain": "bounce.example", "since": since}
    )
    assert by_domain.context["page"].paginator.count == bounce
    by_error = admin_client.get(LOG_URL, {"status": "failed", "error": AUTH_FAILED, "since": since})
    assert by_error.context["page"].paginator.count == auth[0].messages
    html = response.content.decode()
    assert "domain=bounce.example&amp;since=" in html
    assert "error=The%20server%20refused%20the%20login." in html


def test_the_domain_filter_matches_whole_domains_only(admin_client):
    for to in (
        "a@example.com",
        "Ann <ann@EXAMPLE.com>",
        "b@example.com.evil",
        "c@sub.example.community",
    ):
        logged_message(to=to, subject=to)
    response = admin_client.get(LOG_URL, {"domain": "example.com"})
    assert sorted(row.subject for row in response.context["page"].object_list) == [
        "Ann <ann@EXAMPLE.com>",
        "a@example.com",
    ]
    assert "To a recipient at example.com" in response.content.decode()


def test_a_bucket_s_link_lists_the_messages_queued_in_it(admin_client):
    fill_delivery_log(timezone.now(), days=1)
    overview = admin_client.get(LOG_URL).context["overview"]
    bucket = max(overview.buckets, key=lambda b: b.total)
    response = admin_client.get(f"{LOG_URL}?{bucket.query}")
    assert response.context["page"].paginator.count == bucket.total


def test_unreadable_drill_downs_show_no_rows_rather_than_fail(admin_client):
    logged_message()
    response = admin_client.get(LOG_URL, {"since": "yesterday", "domain": "a,b"})
    assert response.status_code == 200
    assert response.context["page"].paginator.count == 0  # as any invalid filter of the log


def test_the_mail_server_page_has_a_sparkline_of_the_last_24_hours(admin_client):
    from tests.factories import PAGE_URL

    now = timezone.now()
    logged_message(queued_at=now - timedelta(hours=1), connection=Connection.PRIMARY)
    logged_message(status=Status.FAILED, queued_at=now - timedelta(hours=3))
    html = admin_client.get(PAGE_URL).content.decode()
    line = re.search(r'data-testid="delivery-summary">(.*?)</p>', html, re.S).group(1)
    assert '<svg class="sparkline"' in line
    assert 'aria-label="Last 24 hours, hour by hour: 1 sent, 1 failed"' in line
