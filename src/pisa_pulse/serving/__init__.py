"""Serving: the publisher (warehouse marts → SQLite) and the Datasette plugin for Forage."""
