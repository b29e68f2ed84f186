"""Where notifications leave the platform: Slack and email, and the delivery service.

The dispatcher (:mod:`monitor.alerts.dispatcher`) is pure: it talks to the
:class:`~monitor.alerts.ports.Channel` port. The channels that implement it live here,
each the only module that speaks its protocol, as the SQL lives in :mod:`monitor.storage`:

- :mod:`~monitor.notifiers.slack` — an incoming webhook (HTTP);
- :mod:`~monitor.notifiers.email` — SMTP;
- :mod:`~monitor.notifiers.channels` — the channels the environment configures;
- :mod:`~monitor.notifiers.service` — a dispatcher over the results database with those
  channels, for the commands that deliver alerts.

Secrets (the webhook URL, the SMTP password) never reach an error text or a log line.
"""
