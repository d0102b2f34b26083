"""The sandbox: simulated vertical government systems served on 127.0.0.1.

The embedded default that ``harvest demo`` harvests and the target of every browser
test. Each system has its own page shape, login door, scope rules and faults, all
switchable, over one deterministic synthetic world.
"""

from sandbox._accounts import DemoAccount
from sandbox._captcha import STYLES as CAPTCHA_STYLES
from sandbox._captcha import Captcha, new_captcha
from sandbox._server import SPECS, Sandbox, SandboxError
from sandbox._switches import Switches
from sandbox._system import SandboxSystem
from sandbox._world import REFERENCE_DATE, Community, World, generate_world

__all__ = [
    "CAPTCHA_STYLES",
    "REFERENCE_DATE",
    "SPECS",
    "Captcha",
    "Community",
    "DemoAccount",
    "Sandbox",
    "SandboxError",
    "SandboxSystem",
    "Switches",
    "World",
    "generate_world",
    "new_captcha",
]
