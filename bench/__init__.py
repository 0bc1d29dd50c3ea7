"""Benchmarks of qstash-operator against what users would otherwise pick.

``python -m bench`` (what ``make bench`` runs) runs them all, prints one table and saves the
figures as JSON under ``bench/results/``; ``python -m bench <name> [options]`` runs one. Every
benchmark measures its baseline in the same run, on the same machine, at the same time:

=============  ===================================================  ===========================
benchmark      ours                                                 baseline
=============  ===================================================  ===========================
tick-to-job    N CronWorkflows, QStash server -> webhook -> Job      N native CronJobs driven by
               (N = 500, then 2,000)                                the real CronJob controller;
                                                                    the floor: the same N Jobs
                                                                    POSTed at once, unthrottled
convergence    1,000 CronWorkflows applied -> all Ready + scheduled  ``kubectl apply`` of the same
                                                                    1,000 objects
                                                                    (``--count 10000``: 10,000)
steady-state   QStash API calls per resync period at 1,000           1 list call per period
webhook-memory the webhook's RSS, caches full (10,000 CronWorkflows,  the same webhook without
               30,000 Jobs)                                         its caches
signature      ``domain.signature.verify``                           the SDK's ``Receiver``
delivery       signed deliveries the QStash-compatible server makes  plain unsigned POSTs
=============  ===================================================  ===========================

Not part of the test run: the figures depend on the machine and its load, which every result
records (CPU count, load average before and after).
"""
