"""Webhooks and notifications: subscriptions, an execution's params.notify
publishers and the delivery outbox (notifier)."""
