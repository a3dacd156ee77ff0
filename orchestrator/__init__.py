"""Crash-safe, rate-limited batch reinstall of ECS fleets."""

__version__ = "0.1.0"
