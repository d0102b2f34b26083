"""``python -m cli``: the ``harvest`` command."""

from cli import app

app()
