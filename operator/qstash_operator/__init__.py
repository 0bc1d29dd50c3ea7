"""qstash-operator: scheduled work on Kubernetes, delivered by Upstash QStash or native CronJobs.

The package is layered (checked by import-linter, see pyproject.toml):

- ``domain``: pure logic. Cron maths, names, the CronWorkflow model, builders of Jobs, CronJobs
  and QStash schedules, signature verification, plans. No I/O; the clock is passed in.
- ``settings``: the one object that reads the environment.
- ``adapters``: the Kubernetes API and the QStash SDK, wrapped so their exceptions become ours.
- ``services``: use cases that combine domain decisions with adapters (reconcile, run a tick).
- ``entrypoints`` and the ``qstash_webhook`` package: kopf handlers, the aiohttp app.
- ``cli``: the ``qstash-operator`` command (its ``qstash-server`` subcommand is the separate
  ``qstash_server`` package, a client of ``domain`` only).
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("qstash-operator")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
