"""Webhooks: job events POSTed to the endpoints of the site's ``[[webhooks]]``.

Each event is written to the ``webhook_deliveries`` table (one row per endpoint,
with a stable id) and delivered by a durable outbox loop, signed like Standard
Webhooks (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``), retried
with backoff until the endpoint answers 2xx or refuses it for good.

Layering: imports ``site_agent`` (and below), never ``federation``.
"""
