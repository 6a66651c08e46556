"""The real-time loop: loader tick → publish → dbt tick, one process (`pulse run`)."""
