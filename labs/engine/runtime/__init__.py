"""Processes that cannot outlive the runner, signals, run state, `lab up`."""
