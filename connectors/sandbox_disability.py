"""残疾人服务管理系统 of the sandbox, declared as a unit declares a system it has just met.

An ASP.NET WebForms system: its login form has its own field names, the list sits in an
iframe and pages by postback. Only what a person would have to tell is declared here.
"""

from connectors import FormLogin, System
from connectors.sandbox import SANDBOX_POLITENESS

disability = System(
    name="disability",
    title="残疾人服务管理系统",
    base_url="http://127.0.0.1:8706",
    home="/Default.aspx",
    logged_in="#lblUser",
    login=FormLogin(path="/Login.aspx"),
    captcha="image",
    lockout_threshold=3,
    politeness=SANDBOX_POLITENESS,
)
