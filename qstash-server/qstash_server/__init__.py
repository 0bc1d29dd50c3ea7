"""A QStash-compatible server for development and tests (``qstash-operator qstash-server``).

There is no reachable QStash in development or CI, and the official dev server is a closed
binary that cannot be downloaded offline (wire reference section 6). This package is a clean-room
server built from the public docs and the Python SDK's wire behaviour: the v2 schedules API,
publish, messages, events (``/v2/events``), the dead-letter queue (``/v2/dlq``), signing keys,
and deliveries signed exactly as QStash signs them, with test controls
(a driven clock, fault injection, logs) that the real service cannot offer.

Modules, pure first:

- ``model``: requests -> records -> JSON; header parsing, validation and QStash's error texts;
- ``backoff``: retry waits and the safe retry-delay expression evaluator;
- ``firing``: which tick fires when; ``clock``: real or driven time;
- ``faults``: fault budgets and API call counts; ``events``: the event log and dead letters;
- ``state``: the store and its JSON file; ``delivery``: the sender and the scheduler;
- ``core``: the use cases; ``app`` and ``controls``: the HTTP surface; ``main``: the CLI;
- ``testing``: helpers to run and drive it from tests.

It may import ``qstash_operator.domain`` (cron maths, the signer) and aiohttp, nothing else of
the project (import-linter's layers contract).
"""
