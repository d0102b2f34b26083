"""Logging in and out of the desk.

The login form has its own CSRF token (a cookie compared with a hidden field), so a page elsewhere
cannot log a browser into an account of its choosing; wrong passwords are throttled by the staff
directory, which refuses even the right one while an account or address is locked.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from desk._app import (
    PRE_LOGIN_COOKIE,
    SESSION_COOKIE,
    check_csrf,
    current_login,
    desk_of,
)
from desk._staff import DeskLogin, LoginRefused, LoginThrottled

router = APIRouter()


def _local(next_path: str) -> str:
    """Only a path on this site; anything else (//evil, https://…) goes home."""
    ok = next_path.startswith("/") and not next_path.startswith(("//", "/\\"))
    return next_path if ok else "/"


def _form(request: Request, next_path: str, message: str = "", name: str = "", status: int = 200) -> Response:
    token = request.cookies.get(PRE_LOGIN_COOKIE) or secrets.token_urlsafe(32)
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
        max_age=3600,
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
    check_csrf(request.cookies.get(PRE_LOGIN_COOKIE, ""), csrf)
    desk = desk_of(request)
    client = request.client.host if request.client else "unknown"
    try:
        session = desk.staff.login(name.strip(), password, client=client)
    except LoginThrottled as exc:
        return _form(request, next, str(exc), name, status=429)
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
