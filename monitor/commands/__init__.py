"""The larger CLI commands, one module each (monitor/cli.py wires every command)."""
