"""NHTSA Standing General Order 2021-01 crash reports: import, summaries, rates (docs/sgo.md)."""
