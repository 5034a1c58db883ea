"""Measuring trained nets: per-exit outputs, frontiers and threshold selection, costs and timing."""
