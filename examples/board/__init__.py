"""A live message board: the demo that ``make demo`` serves (see docs/demo.md)."""
