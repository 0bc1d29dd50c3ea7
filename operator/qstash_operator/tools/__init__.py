"""Maintenance commands for a source checkout: regenerate what the chart copies from elsewhere.

``python -m qstash_operator.tools.sync_chart_crds``   the chart's CRD template from ``crds/``
``python -m qstash_operator.tools.chart_schema``      ``values.schema.json`` from ``values.yaml``

Both take ``--check`` (exit 1 when the generated file differs from the one on disk; the tests
run that) and work only inside a checkout, which :mod:`.checkout` finds.
"""
