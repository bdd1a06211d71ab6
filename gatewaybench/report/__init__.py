"""Reports rebuilt from a run directory alone: HTML, markdown and JSON; pure renders."""
