"""基本公共卫生服务管理系统 (the sandbox's health admin), declared as a unit would declare it."""

from connectors import FormLogin, System
from connectors.sandbox import SANDBOX_POLITENESS

health = System(
    name="health",
    title="基本公共卫生服务管理系统",
    base_url="http://127.0.0.1:8704",
    home="/admin/index",
    logged_in=".user-name",
    login=FormLogin(path="/admin/login"),
    captcha="image",
    lockout_threshold=3,
    politeness=SANDBOX_POLITENESS,
)
