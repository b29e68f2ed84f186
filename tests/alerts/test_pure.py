"""The pure parts of alerting, without I/O: grouping, repeats, retries, silences,
routing, walking windows, rendering and settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.alerts.grouping import Waiting, ready_groups
from monitor.alerts.policy import Policy
from monitor.alerts.records import AlertKey, Notification
from monitor.alerts.render import html_body, slack_payload, subject, text_body
from monitor.alerts.routing import Route, channels_for, routes_from_json
from monitor.alerts.rules import Threshold
from monitor.alerts.settings import AlertSettings, parse_smtp_url
from monitor.alerts.silences import Silence, parse_duration, parse_label, silencing
from monitor.alerts.walk import Position, Step, Window, walk

T0 = datetime(2026, 3, 2, tzinfo=UTC)
S = timedelta(seconds=1)


def waiting(i: int, metric: str, seconds: float, channel: str = "slack") -> Waiting:
    return Waiting(i, channel, f"k{i}", {"metric": metric, "severity": "warning"},
                   T0 + seconds * S)


# -- grouping ----------------------------------------------------------------------------

def test_a_group_waits_for_its_oldest_member_then_takes_everyone() -> None:
    items = [waiting(1, "ctr", 0), waiting(2, "ctr", 25), waiting(3, "latency", 10)]
    assert ready_groups(items, T0 + 29 * S, 30 * S, ("metric",)) == []
    [ctr] = ready_groups(items, T0 + 30 * S, 30 * S, ("metric",))
    assert [m.delivery_id for m in ctr.members] == [1, 2]  # the late one rides along
    both = ready_groups(items, T0 + 40 * S, 30 * S, ("metric",))
    assert [g.group_labels for g in both] == [(("metric", "ctr"),), (("metric", "latency"),)]


def test_groups_are_per_channel_and_group_by_empty_means_one_group() -> None:
    items = [waiting(1, "ctr", 0), waiting(2, "latency", 0), waiting(3, "ctr", 0, "email")]
    groups = ready_groups(items, T0 + 60 * S, 30 * S, ())
    assert [(g.channel, [m.delivery_id for m in g.members]) for g in groups] == [
        ("slack", [1, 2]), ("email", [3])]


def test_a_message_key_depends_only_on_its_members() -> None:
    items = [waiting(1, "ctr", 0), waiting(2, "ctr", 1)]
    first = ready_groups(items, T0 + 60 * S, 30 * S, ("metric",))[0].message_key
    again = ready_groups(list(reversed(items)), T0 + 90 * S, 30 * S, ("metric",))[0]
    assert again.message_key == first
    fewer = ready_groups(items[:1], T0 + 60 * S, 30 * S, ("metric",))[0]
    assert fewer.message_key != first


# -- repeat interval and retries ---------------------------------------------------------

def test_repeat_interval() -> None:
    policy = Policy(repeat_interval=timedelta(hours=4))
    assert not policy.repeat_due(None, T0)  # never announced
    assert not policy.repeat_due(T0, T0 + timedelta(hours=3, minutes=59))
    assert policy.repeat_due(T0, T0 + timedelta(hours=4))


def test_retries_back_off_exponentially_to_a_cap_and_give_up_late() -> None:
    policy = Policy(retry_initial=2 * S, retry_max=60 * S, give_up_after=timedelta(hours=1))
    assert [policy.retry_delay(n) / S for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]
    assert policy.retry_delay(10_000) == 60 * S
    assert not policy.gave_up(T0, T0 + timedelta(minutes=59))
    assert policy.gave_up(T0, T0 + timedelta(hours=1))
    with pytest.raises(ValueError, match="repeat_interval must be positive"):
        Policy(repeat_interval=timedelta(0))


# -- silences ----------------------------------------------------------------------------

def silence(**matchers: object) -> Silence:
    return Silence(7, starts_at=T0, ends_at=T0 + timedelta(hours=2), reason="r",
                   created_by="me", **matchers)  # type: ignore[arg-type]


LABELS = {"metric": "ctr", "segment": "country=BR", "country": "BR", "owner": "growth",
          "severity": "warning"}


@pytest.mark.parametrize(("matchers", "matches"), [
    ({"metric": "ctr"}, True),
    ({"metric": "latency"}, False),
    ({"segment": "country=BR"}, True),
    ({"metric": "ctr", "segment": "country=SE"}, False),
    ({"labels": {"owner": "growth"}}, True),
    ({"labels": {"owner": "growth", "country": "SE"}}, False),
    ({"metric": "ctr", "labels": {"country": "BR"}}, True),
])
def test_a_silence_matches_when_every_matcher_does(matchers: dict[str, Any], matches: bool
                                                   ) -> None:
    assert silence(**matchers).matches(LABELS, T0 + timedelta(hours=1)) is matches


def test_a_silence_is_active_until_it_ends() -> None:
    quiet = silence(metric="ctr")
    assert not quiet.matches(LABELS, T0 - S)
    assert quiet.matches(LABELS, T0)
    assert not quiet.matches(LABELS, T0 + timedelta(hours=2))
    assert silencing([silence(metric="latency"), quiet], LABELS, T0) is quiet


def test_a_silence_without_matchers_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a matcher"):
        Silence(None)


def test_silence_arguments_parse_or_say_what_is_expected() -> None:
    assert parse_label("country=BR") == ("country", "BR")
    assert parse_duration("90m") == timedelta(minutes=90)
    with pytest.raises(ValueError, match="name=value"):
        parse_label("country")
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration("2 hours")


# -- routing -----------------------------------------------------------------------------

def test_first_matching_route_decides_and_unmatched_go_everywhere() -> None:
    routes = [Route(("email",), metric="ctr", severity=("critical",)),
              Route(("slack",), labels={"owner": "growth"}),
              Route((), metric="noisy")]
    configured = ("slack", "email")
    assert channels_for({**LABELS, "severity": "critical"}, routes, configured) == ("email",)
    assert channels_for(LABELS, routes, configured) == ("slack",)
    assert channels_for({"metric": "noisy"}, routes, configured) == ()
    assert channels_for({"metric": "latency"}, routes, configured) == configured
    assert channels_for({"metric": "latency"}, [], ()) == ()


def test_routes_from_the_environment() -> None:
    routes = routes_from_json('[{"severity": ["critical"], "channels": ["email", "slack"]},'
                              ' {"metric": "ctr", "channels": ["slack"]}]')
    assert routes == [Route(("email", "slack"), severity=("critical",)),
                      Route(("slack",), metric="ctr")]
    with pytest.raises(ValueError, match="unknown channel 'pager'"):
        routes_from_json('[{"channels": ["pager"]}]')
    with pytest.raises(ValueError, match="not valid JSON"):
        routes_from_json("severity=critical:email")
    with pytest.raises(ValueError, match="needs \"channels\""):
        routes_from_json('[{"metric": "ctr"}]')
    with pytest.raises(ValueError, match="severity 'urgent'"):
        routes_from_json('[{"severity": ["urgent"], "channels": []}]')


# -- walking windows ---------------------------------------------------------------------

def windows(values: list[float], count: int = 100) -> list[Window]:
    return [(T0 + timedelta(hours=i), T0 + timedelta(hours=i + 1), v, count)
            for i, v in enumerate(values)]


def test_a_flap_within_for_windows_only_pends_and_clears() -> None:
    rule = Threshold("x", above=5, for_windows=3)
    walked = walk(rule, Position(), [], windows([9, 9, 1, 9, 9, 1]))
    assert [s.transition for s in walked.steps] == ["pending", "cleared", "pending", "cleared"]
    assert walked.position.state.status == "inactive" and walked.position.active_since is None


def test_walking_in_pieces_equals_walking_at_once() -> None:
    rule = Threshold("x", above=5, for_windows=2)
    values = windows([1, 9, 9, 9, 1, 9, 9])
    whole = walk(rule, Position(), [], values)
    position = Position()
    steps: list[Step] = []
    for i in range(len(values)):
        piece = walk(rule, position, [], values[: i + 1])  # re-sent windows are skipped
        position, steps = piece.position, steps + piece.steps
    assert steps == whole.steps and position == whole.position
    assert position.active_since == T0 + timedelta(hours=5)


# -- rendering and settings --------------------------------------------------------------

def note(kind: str = "firing", segment: str = "country=BR") -> Notification:
    return Notification("key1", kind, AlertKey("ctr", 1, "batch", "ctr below 18%", segment),  # type: ignore[arg-type]
                        "warning", {"metric": "ctr", "owner": "growth"}, T0, T0 + 3600 * S,
                        0.12, 0.18, "0.12 < 0.18", T0)


def test_messages_say_what_where_how_far_and_link_the_dashboard() -> None:
    text = text_body([note()], "http://dash:8501/", "msg1")
    assert text.splitlines()[:3] == [
        "FIRING ctr [country=BR] ctr below 18%: value 0.12 vs threshold 0.18 (0.12 < 0.18), "
        "window 2026-03-02 00:00-01:00 UTC",
        "  severity warning, stage batch, owner growth",
        "  http://dash:8501/?page=alerts&metric=ctr&segment=country%3DBR&stage=batch"]
    assert "notification id msg1" in text
    assert subject([note(), note("resolved", "country=SE")]) == \
        "[FIRING/RESOLVED:2] ctr: 2 alerts"
    payload = slack_payload([note()], "http://dash:8501", "msg1")
    assert payload["idempotency_key"] == "msg1"
    assert "<http://dash:8501/?page=alerts&metric=ctr" in payload["blocks"][1]["text"]["text"]
    assert "&lt;" not in html_body([note()], "http://d", "k") and "<td>0.12</td>" in \
        html_body([note()], "http://d", "k")


def test_settings_come_from_the_environment_and_hide_secrets() -> None:
    env = {"MONITOR_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T1/B2/sekr3tsekr3t",
           "MONITOR_SMTP_URL": "smtps://bot:p%40ss@mail:465?from=m@x.io",
           "MONITOR_ALERT_ROUTES": '[{"metric": "ctr", "channels": ["email"]}]'}
    settings = AlertSettings.from_env(env)
    assert settings.configured_channels == ("slack",)  # email needs recipients too
    assert "sekr3t" not in repr(settings) and "p@ss" not in repr(settings)
    assert {"sekr3tsekr3t", "p@ss"} <= set(settings.secrets())
    smtp = parse_smtp_url(env["MONITOR_SMTP_URL"])
    assert (smtp.ssl, smtp.port, smtp.password, smtp.display) == (
        True, 465, "p@ss", "smtps://bot:***@mail:465")
    assert settings.routes == (Route(("email",), metric="ctr"),)
    with pytest.raises(ValueError, match="smtp://USER:PASSWORD@HOST"):
        AlertSettings.from_env({"MONITOR_SMTP_URL": "mail.example.com"})
    assert "MONITOR_SLACK_WEBHOOK_URL" in settings.missing("slack")
