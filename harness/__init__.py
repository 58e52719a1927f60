"""Wiring: the run entry point, training loop, MLflow tracking, launching, reports, plots and
benchmarks."""
