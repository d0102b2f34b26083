"""Logging in and out of the desk.

The login form has its own CSRF token (a cookie compared with a hidden field), so a page elsewhere
cannot log a browser into an account of its choosing. The desk issues that token sealed with its
own key (``desk.key``) and takes back only tokens it issued within the hour, so a value a client
chose, or planted in a cookie, is refused. Wrong passwords are throttled by the staff directory,
which refuses even the right one while a name is locked or an address must wait (429, Retry-After).
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from desk._app import (
    PRE_LOGIN_COOKIE,
    SESSION_COOKIE,
    STALE_FORM,
    Refused,
    check_csrf,
    current_login,
    desk_of,
)
from desk._links import Sealer
from desk._staff import DeskLogin, LoginRefused, LoginThrottled

router = APIRouter()
PRE_LOGIN_PURPOSE = "pre-login"  # what a sealed pre-login token opens to, before its time of issue
PRE_LOGIN_S = 3600


def _pre_login_token(sealer: Sealer) -> str:
    return sealer.seal(f"{PRE_LOGIN_PURPOSE} {int(time.time())}")


def _issued(sealer: Sealer, token: str) -> bool:
    """Did this desk issue ``token`` within the last hour? (A person's link opens to an ID number,
    not to the purpose, so one kind of sealed token never passes for the other.)"""
    opened = sealer.open(token) if token else None
    purpose, _, issued_at = (opened or "").partition(" ")
    return purpose == PRE_LOGIN_PURPOSE and issued_at.isdigit() and time.time() - int(issued_at) < PRE_LOGIN_S


def _local(next_path: str) -> str:
    """Only a path on this site; anything else (//evil, https://…) goes home."""
    ok = next_path.startswith("/") and not next_path.startswith(("//", "/\\"))
    return next_path if ok else "/"


def _form(request: Request, next_path: str, message: str = "", name: str = "", status: int = 200) -> Response:
    sealer = desk_of(request).sealer
    token = request.cookies.get(PRE_LOGIN_COOKIE, "")
    if not _issued(sealer, token):
        token = _pre_login_token(sealer)
    page = desk_of(request).render(
        request,
        "login.html",
        {"pre_csrf": token, "next": _local(next_path), "message": message, "name": name},
        status=status,
    )
    page.set_cookie(
        PRE_LOGIN_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=PRE_LOGIN_S,
    )
    return page


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> Response:
    return _form(request, next)


@router.post("/login")
def login(
    request: Request,
    name: Annotated[str, Form(max_length=80)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    desk = desk_of(request)
    token = request.cookies.get(PRE_LOGIN_COOKIE, "")
    if not _issued(desk.sealer, token):
        raise Refused(403, STALE_FORM)
    check_csrf(token, csrf)
    # The direct peer, or the client a trusted proxy (HARVEST_DESK_TRUSTED_PROXIES) names: the
    # server (`harvest serve`) puts it here, and believes no X-Forwarded-For from anyone else.
    client = request.client.host if request.client else "unknown"
    try:
        session = desk.staff.login(name.strip(), password, client=client)
    except LoginThrottled as exc:
        page = _form(request, next, str(exc), name, status=429)
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    except LoginRefused as exc:
        return _form(request, next, str(exc), name, status=401)
    response = RedirectResponse(_local(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        max_age=int(desk.settings.desk_session_hours * 3600),
    )
    response.delete_cookie(PRE_LOGIN_COOKIE)
    return response


@router.post("/logout")
def logout(
    request: Request,
    login: Annotated[DeskLogin, Depends(current_login)],
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    check_csrf(login.csrf, csrf)
    desk_of(request).staff.logout(login.token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
