"""The attack script: `harvest serve` over real HTTP on 127.0.0.1, driven by a donghu clerk (and an
anonymous guesser) with the issue's hostile inputs. The attack runs once for the module; each test
checks one promise over everything it got back: no read of another community, no 500, no personal
value in what the server printed, no search that tells a masked ID's hidden digits, no formula."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import openpyxl
import pandas as pd
import pytest

from desk._staff import StaffDirectory
from sandbox import World
from settings import load_settings
from store import Snapshot, make_engine
from tests.desk_helpers import HOSTILE, PASSWORD, Company, companies, harvest_serve, seed_snapshot
from tests.store_helpers import harvest

MINE = "donghu"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
TOKEN = re.compile(r"/person/([\w-]+)")
MASKED_ID = re.compile(r"\d{6}\*{8}\d{3}[\dX]")
FULL_ID = re.compile(r"(?<!\d)\d{17}[\dX](?!\d)")


def masked_id(id_number: str) -> str:
    return id_number[:6] + "********" + id_number[-4:]


@dataclass
class Attack:
    """What the attack sent and got: (what was tried, status) per request, every text the clerk was
    shown (pages and exported cells), the digit probes' answers, and what the server printed."""

    statuses: list[tuple[str, int]] = field(default_factory=list)
    expected: list[tuple[str, int, int]] = field(default_factory=list)  # (what, wanted, got)
    clerk_saw: list[str] = field(default_factory=list)
    probes: list[tuple[str, bool, bool]] = field(default_factory=list)  # (probe, true hit, wrong hit)
    formula_cells: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)  # personal values the attack typed in
    audit_clients: set[str] = field(default_factory=set)
    throttled: int = 0  # guesses told to wait (429)
    output: str = ""


class Browser:
    """One attacker's browser: every answer is recorded, and the clerk's pages are kept."""

    def __init__(self, url: str, attack: Attack, *, clerk: bool = False, **cookies: str) -> None:
        self.http = httpx.Client(base_url=url, follow_redirects=False, timeout=30, cookies=cookies)
        self.attack, self.clerk = attack, clerk

    def send(self, what: str, method: str, path: str, **kwargs: object) -> httpx.Response:
        try:
            answer = self.http.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError:  # the server dropped the connection: no answer at all
            answer = httpx.Response(0)
        self.attack.statuses.append((what, answer.status_code))
        if self.clerk:
            kind = answer.headers.get("content-type", "")
            self.attack.clerk_saw.append(_cells(answer.content) if "spreadsheet" in kind else answer.text)
        return answer

    def expect(self, wanted: int, what: str, method: str, path: str, **kwargs: object) -> httpx.Response:
        answer = self.send(what, method, path, **kwargs)
        self.attack.expected.append((what, wanted, answer.status_code))
        return answer

    def log_in(self, name: str, password: str = PASSWORD) -> httpx.Response:
        form = self.send("login form", "GET", "/login").text
        data = {"name": name, "password": password, "csrf": CSRF.findall(form)[0]}
        return self.send(f"login {name}", "POST", "/login", data=data)

    def csrf(self) -> str:
        return CSRF.findall(self.send("home", "GET", "/").text)[0]


def _cells(content: bytes) -> str:
    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    assert sheet is not None
    return "\n".join(str(cell.value) for row in sheet.iter_rows() for cell in row if cell.value is not None)


def _formulas(content: bytes) -> list[str]:
    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    assert sheet is not None
    return [cell.coordinate for row in sheet.iter_rows() for cell in row if cell.data_type == "f"]


def _lists(page: str, person: pd.Series) -> bool:
    return masked_id(person["id_number"]) in page


@pytest.fixture(scope="module")
def attack(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Attack]:
    data = tmp_path_factory.mktemp("attack") / "data"
    settings = load_settings(data_dir=data, database_url=None)
    store = seed_snapshot(settings, world)
    harvest(store, companies(), model=Company, dataset="companies", scope=MINE)
    staff = StaffDirectory(make_engine(settings.resolved_database_url))
    staff.add("clerk", PASSWORD, role="staff", scope=MINE)
    staff.add("chief", PASSWORD, role="admin", scope=None)
    people = world.persons
    mine, others = people[people["community"] == MINE], people[people["community"] != MINE]
    result = Attack()
    with harvest_serve(data) as served:
        clerk, chief = Browser(served.url, result, clerk=True), Browser(served.url, result)
        assert clerk.log_in("clerk").status_code == chief.log_in("chief").status_code == 303
        _control_characters(clerk, mine.iloc[0])
        _cross_scope(clerk, chief, others.iloc[:5], world)
        _digit_probes(clerk, mine.iloc[1:4])
        _exports(clerk)
        _overlong(clerk)
        _forged_forwarded_for(Browser(served.url, result))
        _chosen_csrf_cookie(served.url, result)
        result.output = served.stop()
    entries = Snapshot(make_engine(settings.resolved_database_url)).audits(limit=10_000)[0]
    result.audit_clients = {json.loads(e.detail or "{}").get("client", "") for e in entries} - {""}
    yield result


def _control_characters(clerk: Browser, person: pd.Series) -> None:
    clerk.attack.sent += [person["id_number"]]
    csrf = clerk.csrf()
    for path in ("/?q=ab%00cd", "/?q=%00", f"/?q={person['id_number']}%00", "/datasets/persons?q=%0d%0a"):
        clerk.expect(400, f"GET {path}", "GET", path)
    clerk.expect(400, "path NUL", "GET", "/household/%00")
    clerk.expect(400, "path ESC", "GET", "/datasets/persons%1B")
    clerk.expect(400, "reason NUL", "POST", "/datasets/persons", data={"csrf": csrf, "reason": "核对\x00"})
    clerk.expect(400, "export NUL", "POST", "/datasets/persons/export?q=%00", data={"csrf": csrf})


def _cross_scope(clerk: Browser, chief: Browser, outsiders: pd.DataFrame, world: World) -> None:
    """Another community's people, reached by every door: their IDs, phones, names, sealed links (got
    by an admin), household numbers, and filters and export parameters that name their community."""
    csrf = clerk.csrf()
    for _, person in outsiders.iterrows():
        clerk.attack.sent += [person["id_number"], person["phone"]]
        for text in (person["id_number"], person["phone"], person["id_number"][-6:]):
            clerk.send("search outsider", "GET", "/", params={"q": text})
        clerk.send("dataset search outsider", "GET", "/datasets/persons", params={"q": person["id_number"]})
        page = chief.send("admin search", "GET", "/", params={"q": person["id_number"]}).text
        for token in TOKEN.findall(page):
            clerk.expect(404, "outsider link", "GET", f"/person/{token}")
            reveal = {"csrf": csrf, "reason": "核对信息"}
            clerk.expect(
                404, "outsider link revealed", "POST", f"/person/{token}", data=reveal, follow_redirects=True
            )
        clerk.expect(404, "outsider household", "GET", f"/household/{person['household_no']}")
        reveal = {"csrf": csrf, "reason": "核对信息"}
        clerk.expect(
            404,
            "outsider household revealed",
            "POST",
            f"/household/{person['household_no']}",
            data=reveal,
            follow_redirects=True,
        )
    community = str(outsiders.iloc[0]["community"])
    # A filter naming another community is refused outright (400), on the page and the export alike;
    # the clerk's own list, asked for plainly, is what it reads.
    clerk.send("own list", "GET", "/datasets/persons")
    for params in ({"community": community}, {"scope": community}, {"community": community, "q": "1"}):
        clerk.expect(400, "filter outsider", "GET", "/datasets/persons", params=params)
        clerk.expect(
            400, "export outsider", "POST", "/datasets/persons/export", params=params, data={"csrf": csrf}
        )
    for name in ("households", "elderly"):
        clerk.expect(
            400,
            "export outsider",
            "POST",
            f"/datasets/{name}/export",
            params={"community": community},
            data={"csrf": csrf},
        )


def _digit_probes(clerk: Browser, people: pd.DataFrame) -> None:
    """A masked ID hides its eight birth digits and a masked phone its middle four: a search for the
    visible start plus one hidden digit, true or wrong, must not answer differently."""
    for _, person in people.iterrows():
        for value, hidden in ((person["id_number"], range(6, 14)), (person["phone"], range(3, 7))):
            clerk.attack.sent.append(value)
            for k in hidden:
                true = value[: k + 1]
                wrong = value[:k] + str((int(value[k]) + 1) % 10)
                hits = [
                    _lists(clerk.send("digit probe", "GET", "/", params={"q": q}).text, person)
                    for q in (true, wrong)
                ]
                clerk.attack.probes.append((f"{value[:3]}… digit {k + 1}", *hits))


def _exports(clerk: Browser) -> None:
    answer = clerk.expect(
        200, "export companies", "POST", "/datasets/companies/export", data={"csrf": clerk.csrf()}
    )
    clerk.attack.formula_cells += _formulas(answer.content)
    assert all(value in clerk.attack.clerk_saw[-1] for value in HOSTILE)


def _overlong(clerk: Browser) -> None:
    csrf = clerk.csrf()
    clerk.send("overlong search", "GET", "/", params={"q": "王" * 3000})
    clerk.send(
        "overlong dataset search", "GET", "/datasets/persons", params={"q": "1" * 5000, "grid": "网" * 2000}
    )
    clerk.send("overlong household", "GET", "/household/" + "9" * 5000)
    clerk.send("overlong link", "GET", "/person/" + "A" * 5000)
    clerk.expect(
        413, "overlong reason", "POST", "/datasets/persons", data={"csrf": csrf, "reason": "理" * 40_000}
    )
    clerk.send("overlong audit filter", "GET", "/audit", params={"actor": "a" * 3000})


def _forged_forwarded_for(guesser: Browser) -> None:
    """Guesses that name a new address each time: the desk believes no proxy, so they are one address,
    slowed after five failures (each wait is waited out, so the seven failures are counted)."""
    failures = 0
    while failures < 7:
        form = guesser.send("login form", "GET", "/login").text
        data = {"name": f"admin{failures}", "password": "123456789", "csrf": CSRF.findall(form)[0]}
        forged = {"X-Forwarded-For": f"203.0.113.{len(guesser.attack.statuses) % 250}"}
        answer = guesser.send("forged XFF guess", "POST", "/login", data=data, headers=forged)
        if answer.status_code == 429:
            guesser.attack.throttled += 1
            time.sleep(int(answer.headers["retry-after"]))
        else:
            guesser.attack.expected.append(("forged XFF guess", 401, answer.status_code))
            failures += 1


def _chosen_csrf_cookie(url: str, attack: Attack) -> None:
    chosen = "chosen-by-the-attacker-0123456789abcdef"
    browser = Browser(url, attack, gh_pre=chosen)
    data = {"name": "clerk", "password": PASSWORD, "csrf": chosen}
    browser.expect(403, "client-chosen CSRF cookie", "POST", "/login", data=data)


def test_each_hostile_input_gets_the_answer_it_should(attack: Attack) -> None:
    wrong = [(what, wanted, got) for what, wanted, got in attack.expected if got != wanted]
    assert wrong == []
    assert len(attack.expected) > 30


def test_no_answer_is_a_500(attack: Attack) -> None:
    assert [(what, status) for what, status in attack.statuses if status >= 500 or status == 0] == []
    assert len(attack.statuses) > 150


def test_the_clerk_reads_nothing_of_another_community(attack: Attack, world: World) -> None:
    people = world.persons
    mine = people[people["community"] == MINE]
    seen = "\n".join(attack.clerk_saw)
    masked_mine = set(mine["id_number"].map(masked_id))
    assert set(MASKED_ID.findall(seen)) - masked_mine == set()
    # Whole values the clerk typed come back in its own search box; any other is a read.
    assert set(FULL_ID.findall(seen)) - set(mine["id_number"]) - set(attack.sent) == set()
    outsiders_only = set(people.loc[people["community"] != MINE, "phone"]) - set(mine["phone"])
    assert [phone for phone in outsiders_only - set(attack.sent) if phone in seen] == []
    assert len(MASKED_ID.findall(seen)) > 100  # the clerk did see its own community, masked


def test_the_server_prints_no_personal_value(attack: Attack, world: World) -> None:
    output = attack.output
    assert "desk GET / 200" in output  # what it printed was read
    assert "Traceback" not in output
    people = world.persons
    values = [*people["id_number"], *people["phone"], *people["name"], *attack.sent, PASSWORD]
    assert [value for value in values if len(str(value)) >= 2 and str(value) in output] == []


def test_a_forged_forwarded_for_neither_names_the_address_nor_escapes_the_throttle(attack: Attack) -> None:
    assert attack.audit_clients == {"127.0.0.1"}
    assert attack.throttled >= 1


def test_exported_hostile_text_is_no_formula(attack: Attack) -> None:
    assert attack.formula_cells == []


def test_digit_probes_do_not_tell_the_hidden_digits(attack: Attack) -> None:
    assert len(attack.probes) == 3 * (8 + 4)
    assert [probe for probe, true_hit, wrong_hit in attack.probes if true_hit != wrong_hit] == []
