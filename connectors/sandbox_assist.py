"""The sandbox's 社会救助信息管理系统, declared as a unit would declare a layui admin it has just met.

Its login form is a layui one (no ``<form>``, a 登 入 button that is not a submit button, errors in
a toast); the framework finds the fields and the button by itself.
"""

from connectors import FormLogin, System
from connectors.sandbox import SANDBOX_POLITENESS

assist = System(
    name="assist",
    title="社会救助信息管理系统",
    base_url="http://127.0.0.1:8705",
    home="/index",
    logged_in=".layui-nav-username",
    login=FormLogin(path="/user/login"),
    captcha="image",
    lockout_threshold=3,
    politeness=SANDBOX_POLITENESS,
)
