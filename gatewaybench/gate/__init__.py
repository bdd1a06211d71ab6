"""The CI performance-regression gate: paired statistics, per-metric verdicts and their outputs.

Pure functions only: running the baseline and the candidate is the caller's job.
"""
