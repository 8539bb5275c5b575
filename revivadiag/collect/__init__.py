"""Collectors: one module per resource, each gathering raw facts and shaping them into a frame."""
