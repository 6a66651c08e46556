"""The `pulse` command: main.py is the table of contents, one module per command group."""
