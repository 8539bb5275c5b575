"""Runbooks: papermill-executed notebooks, their parameters and their reports."""
