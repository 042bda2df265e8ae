"""The command line: typer commands, option validation and rendering. The only layer that prints."""
