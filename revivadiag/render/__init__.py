"""Rendering: topology graphs and drawings, HTML reports."""
