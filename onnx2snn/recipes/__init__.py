"""Conversion recipes: one module per method, each with the same small interface (see base.py)."""
