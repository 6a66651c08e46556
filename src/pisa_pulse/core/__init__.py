"""The shared kernel: configuration, the codebook, PostgreSQL clusters, dbt, warehouse names."""
