"""Recording one walk's responses, and answering a walk from them: cassettes for offline tests.

``Recorder`` wraps the fetcher a walk reads through and keeps every request and its answer;
``Cassette`` is what is written (one gzip'd JSON document, sealed with the vault's key unless
``--plain``); ``Replay`` is a fetcher that answers from a cassette, without network or login.

Nothing of the account is written: the request keeps its method, path, query and form, the
answer its final address, status, ``content-type`` and body; never a cookie or another header.
Text bodies and every request field pass through ``vault.redact`` (the run's password and
cookie values), and CSRF tokens (hidden inputs and ``<meta>`` whose name says csrf, xsrf or
token, and request fields so named) become one placeholder everywhere, so a replayed form post
still matches its recording. ASP.NET ``__VIEWSTATE``/``__EVENTVALIDATION`` blobs are kept as
served: replay ignores them when it matches a post. Bodies that are not text (an ``.xlsx``
export) are kept as served.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from connectors import Fetched, Fetcher, LayoutChanged, Polite, Politeness, System
from machine import private_dir, utc_now, write_private
from store import Record, record_spec
from vault import VaultError, redact

if TYPE_CHECKING:
    from robots._registry import RobotSpec
    from robots._runner import Harvester, Trial

FORMAT = 1
SEALED = b"GRIDHARVEST-SEALED 1\n"  # then a Fernet token of the gzip'd document (Vault.seal)
GZIP = b"\x1f\x8b"
TOKEN = "CASSETTE-TOKEN"  # what every CSRF token reads in a cassette
TOKEN_NAME = re.compile(r"csrf|xsrf|token", re.IGNORECASE)  # __RequestVerificationToken included
VIEW_STATE = re.compile(r"^__(VIEWSTATE\w*|EVENTVALIDATION)$")
SECRET_MIN = 8  # a token value shorter than this is replaced only where it is named, never as text
UNHURRIED = 1_000.0  # requests a second a replay allows: no real waits
_TAG = re.compile(r"<(?:input|meta)\b[^>]*>", re.IGNORECASE)
_ATTR = re.compile(r"""([^\s=/>"']+)\s*=\s*("[^"]*"|'[^']*'|[^\s"'>]+)""")
_TEXT_SUBTYPES = ("json", "xml", "javascript", "x-javascript")  # of application/: an .xlsx is not text

Pairs = tuple[tuple[str, str], ...]
RequestKey = tuple[str, str, Pairs, Pairs | None]


class CassetteError(Exception):
    """A cassette that cannot be read as asked; ``str()`` is the one line naming the fix."""


class ReplayMiss(LayoutChanged):
    """The walk asked a replay for a request its cassette does not hold: the robot or the pages changed."""


@dataclass(frozen=True)
class Entry:
    """One request and its answer. ``body`` is text (decoded, scrubbed) or bytes (kept as served)."""

    method: str
    path: str  # relative to the system's base URL, without the query
    query: Pairs
    form: Pairs | None
    url: str  # where the answer came from, relative where it is on the system
    status: int
    content_type: str
    body: str | bytes

    def key(self) -> RequestKey:
        return _key(self.method, self.path, self.query, self.form)

    def fetched(self, system: System) -> Fetched:
        url = system.url(self.url) if self.url.startswith("/") else self.url
        if isinstance(self.body, bytes):
            return Fetched(url, self.status, {"content-type": self.content_type}, self.body)
        return Fetched(url, self.status, {"content-type": _utf8(self.content_type)}, self.body.encode())

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "method": self.method,
            "path": self.path,
            "query": [list(pair) for pair in self.query],
            "form": None if self.form is None else [list(pair) for pair in self.form],
            "url": self.url,
            "status": self.status,
            "content_type": self.content_type,
        }
        if isinstance(self.body, bytes):
            data["base64"] = base64.b64encode(self.body).decode("ascii")
        else:
            data["text"] = self.body
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        form = data["form"]
        return cls(
            method=data["method"],
            path=data["path"],
            query=tuple((k, v) for k, v in data["query"]),
            form=None if form is None else tuple((k, v) for k, v in form),
            url=data["url"],
            status=data["status"],
            content_type=data["content_type"],
            body=base64.b64decode(data["base64"]) if "base64" in data else data["text"],
        )


@dataclass
class Cassette:
    """One recorded walk: which robot read what, with which account's scope, and every answer."""

    system: str
    robot: str
    account: str
    scope: str
    base_url: str  # the system's address when recorded: absolute links in its pages are relative to it
    recorded_at: str
    entries: list[Entry] = field(default_factory=list)
    format: int = FORMAT
    sealed: bool = False  # read from a sealed file (the expected records beside it are sealed too)

    def save(self, path: Path, *, seal: Callable[[bytes], bytes] | None = None) -> None:
        """Write it 0600, gzip'd JSON; sealed by ``seal`` (``Vault.seal``) unless it is synthetic data."""
        document = {
            "format": self.format,
            "system": self.system,
            "robot": self.robot,
            "account": self.account,
            "scope": self.scope,
            "base_url": self.base_url,
            "recorded_at": self.recorded_at,
            "entries": [entry.to_json() for entry in self.entries],
        }
        data = gzip.compress(json.dumps(document, ensure_ascii=False).encode(), mtime=0)
        _write(path, data, seal)

    @classmethod
    def load(cls, path: Path, *, unseal: Callable[[bytes], bytes] | None = None) -> Cassette:
        data, sealed = _read(path, unseal, what="录像")
        try:
            document = json.loads(gzip.decompress(data))
            if document["format"] != FORMAT:
                raise CassetteError(
                    f"录像 {path} 的格式是第 {document['format']} 版，这里只读第 {FORMAT} 版：请重新录制"
                )
            return cls(
                system=document["system"],
                robot=document["robot"],
                account=document["account"],
                scope=document["scope"],
                base_url=document["base_url"],
                recorded_at=document["recorded_at"],
                entries=[Entry.from_json(entry) for entry in document["entries"]],
                sealed=sealed,
            )
        except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
            raise CassetteError(f"录像 {path} 已损坏（{type(exc).__name__}）：请重新录制") from exc


class Recorder:
    """A fetcher that passes every fetch through to ``fetcher`` and keeps the request and its answer."""

    def __init__(self, fetcher: Fetcher) -> None:
        self.fetcher = fetcher
        self.entries: list[Entry] = []  # as answered, unscrubbed: ``cassette()`` scrubs them all at once

    @property
    def system(self) -> System:
        return self.fetcher.system

    @property
    def polite(self) -> Polite:
        return self.fetcher.polite

    async def fetch(
        self,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        form: Mapping[str, str] | None = None,
        what: str = "",
    ) -> Fetched:
        reply = await self.fetcher.fetch(path, params=params, form=form, what=what)
        bases = (self.system.base_url,)
        where, query = _request(self.system, bases, path, params)
        self.entries.append(
            Entry(
                method="GET" if form is None else "POST",
                path=where,
                query=query,
                form=None if form is None else tuple((k, str(v)) for k, v in form.items()),
                url=_relative(reply.url, bases),
                status=reply.status,
                content_type=reply.headers.get("content-type", ""),
                body=reply.body,
            )
        )
        return reply


class Replay:
    """A fetcher that answers each request from a cassette: equal requests in recorded order.

    A request matches on method, path, query (in any order) and form, the form's view-state
    fields and tokens aside (the server's own blobs, not what the robot chose to send).
    ``fix`` is what a miss tells the reader to do.
    """

    def __init__(self, cassette: Cassette, system: System, *, fix: str | None = None) -> None:
        self.system = system
        p = system.politeness
        self.polite = Polite(
            Politeness(concurrency=p.concurrency, sessions=1, rate=UNHURRIED, retries=p.retries),
            name=system.name,
        )
        self._bases = (system.base_url, cassette.base_url)
        self._fix = fix or (
            "机器人或系统的页面已与录制时不同，请重新录制："
            f"`harvest record {cassette.robot} --account {cassette.account}`"
        )
        self._robot = cassette.robot
        self._answers: dict[RequestKey, list[Entry]] = {}
        for entry in cassette.entries:
            self._answers.setdefault(entry.key(), []).append(entry)
        self._served: dict[RequestKey, int] = {}

    async def fetch(
        self,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        form: Mapping[str, str] | None = None,
        what: str = "",
    ) -> Fetched:
        where, query = _request(self.system, self._bases, path, params)
        method = "GET" if form is None else "POST"
        key = _key(method, where, query, None if form is None else tuple(form.items()))
        answers = self._answers.get(key)
        if not answers:
            shown = where + (f"?{urlencode(query)}" if query else "")
            posted = f"（表单字段 {', '.join(k for k, _ in key[3] or ())}）" if form is not None else ""
            raise ReplayMiss(f"回放 {self._robot}：没有 {method} {shown}{posted} 的应答：{self._fix}")
        served = self._served.get(key, 0)
        self._served[key] = served + 1
        return answers[min(served, len(answers) - 1)].fetched(self.system)  # read once more: the last answer


async def recorded(harvester: Harvester, robot: RobotSpec, account: str) -> tuple[Trial, Cassette]:
    """A whole walk of ``robot`` with ``account``, logged in as a run would, recorded; nothing published."""
    recorders: list[Recorder] = []

    def wrap(fetcher: Fetcher) -> Fetcher:
        recorders.append(Recorder(fetcher))
        return recorders[-1]

    trial = await harvester.trial(robot, account, wrap=wrap)
    system = harvester.system(robot.system)
    cassette = Cassette(
        system=system.name,
        robot=robot.name,
        account=account,
        scope=trial.scope,
        base_url=system.base_url,
        recorded_at=utc_now().isoformat(),
        entries=scrubbed(entry for recorder in recorders for entry in recorder.entries),
    )
    return trial, cassette


def scrubbed(entries: Iterable[Entry]) -> list[Entry]:
    """``entries`` with the run's secrets masked and every CSRF token replaced by one placeholder.

    Every body is looked at before any is changed: a token first seen in a later page is replaced
    in the earlier ones too, so the same token reads the same everywhere.
    """
    decoded = [_decoded(entry) for entry in entries]
    tokens: set[str] = set()
    for entry in decoded:
        if isinstance(entry.body, str):
            tokens |= _page_tokens(entry.body)
        tokens |= {v for k, v in (*entry.query, *(entry.form or ())) if TOKEN_NAME.search(k) and v}
    long_tokens = sorted((t for t in tokens if len(t) >= SECRET_MIN), key=len, reverse=True)
    known = re.compile("|".join(map(re.escape, long_tokens))) if long_tokens else None

    def clean(text: str) -> str:
        return redact(known.sub(TOKEN, text) if known is not None else text)

    def pairs(found: Pairs) -> Pairs:
        return tuple((k, TOKEN if TOKEN_NAME.search(k) and v else clean(v)) for k, v in found)

    return [
        Entry(
            method=e.method,
            path=clean(e.path),
            query=pairs(e.query),
            form=None if e.form is None else pairs(e.form),
            url=clean(e.url),
            status=e.status,
            content_type=e.content_type,
            body=clean(_tokens_placed(e.body)) if isinstance(e.body, str) else e.body,
        )
        for e in decoded
    ]


def served(system: System, path: str, body: str | bytes) -> Entry:
    """A page given by hand (``fake_walk``): a 200 answer to a GET of ``path``, HTML, JSON or bytes."""
    where, query = _request(system, (system.base_url,), path, None)
    if isinstance(body, bytes):
        kind = "application/octet-stream"
    else:
        kind = "application/json" if body.lstrip()[:1] in ("{", "[") else "text/html"
    url = where + (f"?{urlencode(query)}" if query else "")
    return Entry("GET", where, query, None, url, 200, kind, body)


def expected_beside(cassette: Path) -> Path:
    """Where the records a cassette's replay should read are kept: ``ROBOT.expected.jsonl`` beside it."""
    return cassette.with_name(f"{cassette.name.removesuffix('.cassette')}.expected.jsonl")


def write_expected(
    path: Path, records: list[Record], *, seal: Callable[[bytes], bytes] | None = None
) -> None:
    """The records as JSON lines sorted by their key: what a replay of the cassette beside it reads."""
    text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in expected_lines(records))
    _write(path, text.encode(), seal)


def read_expected(path: Path, *, unseal: Callable[[bytes], bytes] | None = None) -> list[dict[str, Any]]:
    data, _ = _read(path, unseal, what="预期记录")
    try:
        return [json.loads(line) for line in data.decode().splitlines() if line.strip()]
    except ValueError as exc:
        raise CassetteError(f"预期记录 {path} 不是 JSON 行（{exc}）：删掉它，让测试重新写下") from exc


def expected_lines(records: list[Record]) -> list[dict[str, Any]]:
    """Each record as JSON would write it, sorted by its natural key."""
    lines = [(_record_key(r), json.loads(r.model_dump_json())) for r in records]
    return [line for _, line in sorted(lines, key=lambda pair: pair[0])]


def record_key(line: Mapping[str, Any], model: type[Record]) -> tuple[str, ...]:
    return tuple(str(line.get(name)) for name in record_spec(model).key)


def _record_key(record: Record) -> tuple[str, ...]:
    return record_key(record.model_dump(mode="json"), type(record))


def _write(path: Path, data: bytes, seal: Callable[[bytes], bytes] | None) -> None:
    private_dir(path.parent)
    write_private(path, SEALED + seal(data) if seal is not None else data)


def _read(path: Path, unseal: Callable[[bytes], bytes] | None, *, what: str) -> tuple[bytes, bool]:
    """The file's bytes, unsealed if it is sealed, and whether it was."""
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise CassetteError(f"没有{what} {path}：用 `harvest record ROBOT --account A` 录制") from None
    if not blob.startswith(SEALED):
        return blob, False
    if unseal is None:
        raise CassetteError(
            f"{what} {path} 已用保险库密钥加密：设置 HARVEST_VAULT_KEY 为录制它的保险库的密钥"
        )
    try:
        return unseal(blob[len(SEALED) :]), True
    except VaultError as exc:
        raise CassetteError(f"{what} {path} 已加密，打不开：{exc}") from exc


def _request(
    system: System, bases: tuple[str, ...], path: str, params: Mapping[str, str | int] | None
) -> tuple[str, Pairs]:
    """The request's path relative to the system, and its query with ``params`` merged in."""
    parts = urlsplit(system.url(path))
    where = _relative(urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), bases)
    query = parse_qsl(parts.query, keep_blank_values=True) + [(k, str(v)) for k, v in (params or {}).items()]
    return where, tuple(query)


def _relative(url: str, bases: tuple[str, ...]) -> str:
    for base in bases:
        root = base.rstrip("/")
        if url == root or url.startswith((root + "/", root + "?")):
            rest = url[len(root) :]
            return rest if rest.startswith("/") else "/" + rest
    return url


def _key(method: str, path: str, query: Pairs, form: Pairs | None) -> RequestKey:
    def kept(pairs: Pairs) -> Pairs:
        return tuple(sorted((k, v) for k, v in pairs if not (VIEW_STATE.match(k) or TOKEN_NAME.search(k))))

    return method, path, kept(query), None if form is None else kept(form)


def _decoded(entry: Entry) -> Entry:
    """The entry with a text body decoded as the walk would read it; other bodies stay bytes."""
    body = entry.body
    if not isinstance(body, bytes) or not _is_text(entry.content_type, body):
        return entry
    text = Fetched(entry.url, entry.status, {"content-type": entry.content_type}, body).text
    return dataclasses.replace(entry, body=text)


def _is_text(content_type: str, body: bytes) -> bool:
    if content_type:
        main, _, sub = content_type.split(";")[0].strip().lower().partition("/")
        return main == "text" or sub in _TEXT_SUBTYPES or sub.endswith(("+json", "+xml"))
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _utf8(content_type: str) -> str:
    """The content type with ``charset=utf-8``: a replayed text body is UTF-8, whatever it was served as."""
    kind = content_type.split(";")[0].strip() or "text/html"
    return f"{kind}; charset=utf-8"


def _page_tokens(html: str) -> set[str]:
    return {value for tag in _TAG.finditer(html) if (value := _token_value(tag.group(0))) is not None}


def _tokens_placed(html: str) -> str:
    """Every token input's value and token ``<meta>``'s content replaced by the placeholder."""

    def place(tag: re.Match[str]) -> str:
        text = tag.group(0)
        spot = _token_spot(text)
        if spot is None:
            return text
        start, end = spot
        return f'{text[:start]}"{TOKEN}"{text[end:]}'

    return _TAG.sub(place, html)


def _token_value(tag: str) -> str | None:
    spot = _token_spot(tag)
    return tag[spot[0] : spot[1]].strip("\"'") if spot is not None else None


def _token_spot(tag: str) -> tuple[int, int] | None:
    """Where the token is in an ``<input>`` or ``<meta>`` tag that holds one (its quoted value)."""
    attrs = {m.group(1).lower(): m for m in _ATTR.finditer(tag)}
    name = attrs.get("name")
    if name is None or not TOKEN_NAME.search(name.group(2)):
        return None
    value = attrs.get("content" if tag[1:5].lower() == "meta" else "value")
    return value.span(2) if value is not None else None
