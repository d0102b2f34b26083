"""Desk: the web site where community staff query the snapshot (masked, scoped, audited).

``create_app(settings)`` builds the FastAPI app that ``harvest serve`` runs; staff accounts come from
``harvest desk add-user``. Pages are Chinese, server-rendered and fit a phone.
"""

from desk._app import create_app

__all__ = ["create_app"]
