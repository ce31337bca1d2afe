"""Stance model (dataset, training, backends, evaluation) and stance over time."""
