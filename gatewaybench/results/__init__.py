"""The run directory: an append-only record of what was measured, written as it is measured."""
