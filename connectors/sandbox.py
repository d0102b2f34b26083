"""The bundled sandbox systems, declared as a unit declares its real ones.

Their base URLs follow the default ``HARVEST_SANDBOX_PORT`` (8701, 8702, 8703; the systems
of other shapes, declared in ``connectors/sandbox_*.py``, take 8704 to 8706); the demo and the
tests point them at wherever the sandbox runs with ``HARVEST_SYSTEM_URLS``.
"""

from connectors import FormLogin, Politeness, System

# The sandbox stands in for a county's servers: be as polite to it as to them. Like a new
# user, it declares only how many requests may be in flight; the pace finds the rest.
SANDBOX_POLITENESS = Politeness(concurrency=4)

population = System(
    name="population",
    title="人口管理系统",
    base_url="http://127.0.0.1:8701",
    home="/persons",
    logged_in="#current-user",
    login=FormLogin(submit="#login-button"),
    captcha="image",
    lockout_threshold=3,
    politeness=SANDBOX_POLITENESS,
)

civil = System(
    name="civil",
    title="民政养老服务系统",
    base_url="http://127.0.0.1:8702",
    home="/elderly",
    logged_in="#current-user",
    login=FormLogin(),
    captcha="image",
    lockout_threshold=3,
    politeness=SANDBOX_POLITENESS,
)

market = System(
    name="market",
    title="市场监管主体信息系统",
    base_url="http://127.0.0.1:8703",
    home="/entities",
    logged_in="#current-user",
    login=FormLogin(),
    captcha="image",
    lockout_threshold=3,
    politeness=SANDBOX_POLITENESS,
)

SYSTEMS = (population, civil, market)
