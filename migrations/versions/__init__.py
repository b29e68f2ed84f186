"""Alembic revisions (a package so that it is installed with domain-monitor)."""
