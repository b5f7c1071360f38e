"""Scoring and timing: metrics, test-set layouts, ``evaluate`` and the speed benchmark.
Imports separation and the layers below it."""
