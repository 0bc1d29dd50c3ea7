"""The webhook service QStash delivers to, plus the seed's /api/cron endpoints and the web
console at /ui/ (:mod:`qstash_webhook.console`).

An aiohttp application (``app.make_app``) over the shared core in :mod:`qstash_operator`:
signature verification and cron maths from its domain, the Kubernetes adapter, and the run
service that turns one tick into exactly one Job.
"""
