"""Desk: the web site where community staff query the snapshot (masked, scoped, audited).

``create_app(settings)`` builds the FastAPI app that ``harvest serve`` runs; staff accounts come from
``harvest desk add-user``. Pages are Chinese, server-rendered and fit a phone.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from desk._app import create_app, serve_app

__all__ = ["create_app", "serve_app"]


def __getattr__(name: str) -> Any:
    # FastAPI, pandas and the pages load with the app (PEP 562), not with `harvest desk` (desk._cli).
    if name in __all__:
        from desk import _app

        return getattr(_app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
