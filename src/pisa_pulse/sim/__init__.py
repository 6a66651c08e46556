"""The application-database simulator: GEI's per-country databases, stood in for."""
