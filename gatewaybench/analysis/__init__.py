"""Pure functions from raw records on disk to figures: nothing here starts or stops anything."""
