"""The ``ilm`` command line: thin Typer commands over the library."""
