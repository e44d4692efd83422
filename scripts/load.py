"""Bounded load: N concurrent staff sessions of every demo role against a site on this machine (issue 11 §6).

Usage (the site served as in production, e.g. ``scripts/serve_production.sh`` with worker and beat):

    .venv/bin/python scripts/load.py --base http://127.0.0.1:8000 --sessions 50 --seconds 60 \
        [--database-url postgres://…/casework]      # to check afterwards that every write landed

or let it serve the site itself (gunicorn + whitenoise + Celery worker + beat, production settings,
through ``scripts/serve_production.sh`` on a free port) against a database that holds the demo
bureau (``--setup-demo`` runs ``migrate`` and ``demo_setup`` first):

    .venv/bin/python scripts/load.py --serve --database-url postgres://postgres@127.0.0.1:5432/cw_load \
        --redis-url redis://127.0.0.1:6379/6 --setup-demo --sessions 50 --seconds 60

What each session does: signs in once (its own account where the demo bureau has enough of that
role: sign-in throttling counts failures only, so load users are never paused), then until the
time is up, by its role: the case list (the role's default view), one of its work queues, a search,
a case page, and the forward actions of its role on the cases it finds — 交办 (dispatcher), 签收,
draft saves and 提交反馈 (handler), 审核通过 (office reviewer), 审签同意 (leader), 发布/回访
(dispatcher); supervisors and the superuser read. Every form is sent as the page rendered it:
the CSRF token, the case version and ``lock_version`` fields included, so a write made from a page
someone else changed meanwhile is *refused* by the site (reported as refused, not as an error).

**Think time (the default: people read before they click).** Between two clicks a session pauses
as a person reading the page just answered: an exponential pause (memoryless clicks, so arrivals
at the site are Poisson-like) with mean ``--think`` seconds (default ``DEFAULT_THINK`` = 5 s) after a
list, a queue or a search, twice that after a case page (10 s), capped at ``THINK_CAP`` × the mean
so no session idles through a short run. A write (the POST and the case page it leads to) is one
click, as in a browser. Assumption, stated with every result: a handler scans a list of 20–100
rows and picks a case in ~5 s and reads a case page (message, history, drafts) in ~10 s before the
next click. That is *brisker* than real staff (who read a message for a minute and type a reply
for several), so the offered load per session is higher than a real desk's — conservative for
the site. Each session's first click also waits a drawn pause, so sessions do not all start on
the same second. ``--think 0`` is the closed loop: each session sends its next request as soon as
the last is answered; its requests/s is the **saturation** figure (what the server carries at
most), and its latencies are those of a queue kept full, not of staff. ``run()`` reports both,
each row naming its think model.

Bounds: the base URL must resolve to loopback addresses only (anything else is refused before a
request is sent); the run stops by itself after ``--seconds`` (at most 3600); each request times
out after 60 s. Reported: requests/s, p50/p95 per page, errors (any 4xx/5xx, a lost session, a
transport error), refusals with their messages, and — with ``--database-url`` — the writes the site
confirmed that are not in the database (must be none).

``run(**kw)`` returns the figures as ``(measure, figure, target)`` rows for ``scripts/bench.py``.
Standard library only (threads, ``http.client``); psycopg (already a dependency) for the check.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC
from html.parser import HTMLParser
import http.client
from http.cookies import SimpleCookie
import ipaddress
import json
import os
from pathlib import Path
import random
import re
import secrets
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from urllib.parse import urlencode, urljoin, urlsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_THINK = 5.0  # mean seconds a person reads a list before the next click (see the docstring)
THINK_FACTOR = {"list": 1.0, "case page": 2.0}  # × the mean: a case page is read about twice as long
THINK_CAP = 6.0  # no pause longer than 6 × its mean (keeps short runs busy; lowers the mean by 0.25 %)
DEFAULT_ACCOUNTS = ROOT / "accounts" / "data" / "demo_bureau.json"
MAX_SECONDS = 3600
REQUEST_TIMEOUT = 60
KEEPALIVE_IDLE = 1.0  # seconds a kept-alive connection may idle before a session opens a new one
SIGN_IN_AT_ONCE = 2  # sessions signing in at the same time, before the measured period
# Roles in the order sessions are given out, so a few sessions already cover the loop's roles.
ROLE_PATTERN = ("dispatcher", "handler", "office_reviewer", "leader", "supervisor", "superuser",
                "handler", "handler", "handler", "handler")
# The forward actions each role takes when its case page offers them (never a send-back or a refusal).
ROLE_WRITES = {
    "dispatcher": ("dispatch", "publish_reply", "record_follow_up"),
    "handler": ("accept", "save_draft", "submit_feedback"),
    "office_reviewer": ("office_approve",),
    "leader": ("leader_approve",),
    "supervisor": (),
    "superuser": (),
}
SEARCH_WORDS = ("路灯", "户口", "噪音", "小区", "交通", "居住证", "投诉", "咨询")
CASE_LINK = re.compile(r'href="(/admin/casework/case/(\d+)/change/)[^"]*"')
QUEUE_LINK = re.compile(r'href="(\?queue=[\w-]+)"')
MESSAGE = re.compile(r'<li class="(success|error|warning|info)">(.*?)</li>', re.S)
ACT_PATH = re.compile(r"/admin/casework/case/(\d+)/act/([\w-]+)/$")


class Refused(SystemExit):
    pass


def loopback_only(base: str) -> tuple[str, int]:
    """Return (host, port) of ``base`` if every address it resolves to is loopback; refuse otherwise."""
    parts = urlsplit(base)
    if parts.scheme != "http" or not parts.hostname:
        raise Refused(f"refused: {base!r} is not an http:// URL (the load runs against this machine only)")
    port = parts.port or 80
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)}
    except socket.gaierror as exc:
        raise Refused(f"refused: {parts.hostname} does not resolve ({exc})") from exc
    if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise Refused(f"refused: {parts.hostname} resolves to {sorted(addresses)}, not only loopback addresses")
    return parts.hostname, port


# ---------------------------------------------------------------- accounts and sessions


def accounts_by_role(path: Path, superuser: str) -> dict[str, list[str]]:
    """Return ``{role: [username, …]}`` from a bureau preset (``accounts/data/demo_bureau.json``)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    roles: dict[str, list[str]] = defaultdict(list)
    for person in data["staff"]:
        for role in person.get("roles", []):
            roles[role].append(person["username"])
    if superuser:
        roles["superuser"].append(superuser)
    return dict(roles)


def plan_sessions(roles: dict[str, list[str]], count: int) -> list[tuple[str, str]]:
    """Give ``count`` sessions a (role, username) each: roles in ``ROLE_PATTERN`` order, accounts distinct
    as long as the role has unused ones, then shared (several sessions of one account)."""
    pattern = [r for r in ROLE_PATTERN if roles.get(r)]
    used: dict[str, int] = defaultdict(int)
    plan = []
    for n in range(count):
        role = pattern[n % len(pattern)]
        names = roles[role]
        plan.append((role, names[used[role] % len(names)]))
        used[role] += 1
    return plan


class _Forms(HTMLParser):
    """The forms of a page: action, id, fields (inputs, textareas, selects) and submit buttons."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self._form = None
        self._textarea = None
        self._select = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._form = {"action": a.get("action", ""), "id": a.get("id", ""), "fields": [], "submits": []}
            self.forms.append(self._form)
        elif self._form is None:
            return
        elif tag == "input":
            kind = (a.get("type") or "text").lower()
            if kind == "submit":
                self._form["submits"].append(a)
            elif a.get("name"):
                self._form["fields"].append({"tag": "input", "type": kind, **a})
        elif tag == "textarea" and a.get("name"):
            self._textarea = {"tag": "textarea", "text": "", **a}
            self._form["fields"].append(self._textarea)
        elif tag == "select" and a.get("name"):
            self._select = {"tag": "select", "options": [], **a}
            self._form["fields"].append(self._select)
        elif tag == "option" and self._select is not None:
            self._select["options"].append((a.get("value", ""), "selected" in a))

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea["text"] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None


def page_forms(html: str) -> list[dict]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


def form_data(form: dict, *, text: str, rng: random.Random, submit_name: str | None = None) -> list[tuple[str, str]]:
    """What a person filling ``form`` sends: every hidden and given value as rendered (CSRF token,
    case version, lock_version), ``text`` in every empty text field and in every textarea when the
    form is a draft, the preselected (or a random) option of each select, boxes ticked."""
    data: list[tuple[str, str]] = []
    radios_done = set()
    draft = "reply_text" in {f.get("name") for f in form["fields"]}
    for f in form["fields"]:
        name = f["name"]
        if f["tag"] == "textarea":
            value = f["text"].strip()
            if draft or (not value and "required" in f):
                value = f"{text} · {name}"
            data.append((name, value))
        elif f["tag"] == "select":
            options = [(v, s) for v, s in f["options"] if v]
            chosen = next((v for v, s in options if s), None) or (rng.choice(options)[0] if options else "")
            data.append((name, chosen))
        elif f["type"] == "checkbox":
            data.append((name, f.get("value", "on")))
        elif f["type"] == "radio":
            if name not in radios_done:
                radios_done.add(name)
                data.append((name, f.get("value", "")))
        elif f["type"] in ("hidden", "text", "number", "date", "datetime-local", "email", "url"):
            value = f.get("value", "")
            if not value and "required" in f:
                value = "1" if f["type"] == "number" else text
            data.append((name, value))
    submit = next((s for s in form["submits"] if submit_name and s.get("name") == submit_name), None)
    if submit is None and form["submits"]:
        submit = form["submits"][0]
    if submit is not None and submit.get("name"):
        data.append((submit["name"], submit.get("value", "")))
    return data


@dataclass
class Stats:
    """Latencies per page, errors, refusals and confirmed writes, shared by the sessions (locked)."""

    started: float = field(default_factory=time.monotonic)
    wall_started: float = field(default_factory=time.time)
    latencies: dict = field(default_factory=lambda: defaultdict(list))
    errors: list = field(default_factory=list)
    refusals: dict = field(default_factory=lambda: defaultdict(int))
    writes: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def timed(self, label: str, seconds: float) -> None:
        with self.lock:
            self.latencies[label].append(seconds)

    def error(self, label: str, path: str, what: str) -> None:
        with self.lock:
            self.errors.append((label, path, what[:300]))

    def refused(self, action: str, message: str) -> None:
        with self.lock:
            self.refusals[f"{action}: {message[:120]}"] += 1

    def wrote(self, record: dict) -> None:
        with self.lock:
            self.writes.append(record)


class Session:
    """One member of staff's browser: cookies, CSRF header rules of an HTTPS site behind its proxy."""

    def __init__(self, *, host: str, port: int, https_proxy: bool, stats: Stats) -> None:
        self.host, self.port, self.stats = host, port, stats
        self.authority = f"{host}:{port}"
        self.origin = ("https://" if https_proxy else "http://") + self.authority
        self.https_proxy = https_proxy
        self.cookies: dict[str, str] = {}
        self.conn: http.client.HTTPConnection | None = None
        self.used = 0.0  # time.monotonic() of the last answer on ``conn``
        self.reused = False

    def _connection(self) -> http.client.HTTPConnection:
        # A browser does not send on a kept-alive connection the server has already closed: it sees
        # the close while idle. A connection idle for longer than the server may keep it (gunicorn's
        # --keep-alive, 2 s; a front server's is longer) is replaced rather than written to.
        if self.conn is not None and time.monotonic() - self.used > KEEPALIVE_IDLE:
            self.close()
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT)
            self.reused = False
        else:
            self.reused = True
        return self.conn

    def request(self, method: str, path: str, *, label: str, data=None, expect=(200,)):
        """Send one request; return (status, location, body text) or None after recording an error."""
        headers = {"Host": self.authority, "User-Agent": "casework-load/1", "Accept-Language": "zh-hans"}
        if self.https_proxy:
            headers["X-Forwarded-Proto"] = "https"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if data is not None:
            body = urlencode(data).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Origin"] = self.origin
            headers["Referer"] = self.origin + path
        started = time.monotonic()
        for attempt in (1, 2):
            try:
                conn = self._connection()
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                content = response.read()
                break
            except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out: a failed request
                reused = self.reused
                self.close()
                # As browsers do: a GET on a kept-alive connection the server closed just before it
                # was sent (no answer at all) is sent once more on a new connection. A POST never is.
                if (attempt == 1 and reused and method == "GET"
                        and isinstance(exc, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError))):
                    started = time.monotonic()
                    continue
                self.stats.error(label, path, f"{type(exc).__name__}: {exc}")
                return None
        self.used = time.monotonic()
        self.stats.timed(label, self.used - started)
        for header in response.msg.get_all("Set-Cookie") or []:
            cookie = SimpleCookie()
            cookie.load(header)
            for key, morsel in cookie.items():
                if morsel.value == "" or morsel["max-age"] == "0":
                    self.cookies.pop(key, None)
                else:
                    self.cookies[key] = morsel.value
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        text = content.decode("utf-8", "replace")
        location = response.getheader("Location") or ""
        if response.status not in expect:
            note = re.search(r'class="errornote"[^>]*>(.*?)</', text, re.S)
            self.stats.error(label, path, f"HTTP {response.status} {location} "
                                          f"{note.group(1).strip() if note else text[:200]}")
            return None
        if "/admin/login/" in location and label != "login":
            self.stats.error(label, path, "session lost: sent to the login page")
            return None
        return response.status, location, text

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def login(self, username: str, password: str) -> bool:
        got = self.request("GET", "/admin/login/?next=/admin/", label="login")
        if got is None:
            return False
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', got[2])
        if not token:
            self.stats.error("login", "/admin/login/", "no CSRF token on the login page")
            return False
        got = self.request("POST", "/admin/login/?next=/admin/", label="login", expect=(302,), data={
            "csrfmiddlewaretoken": token.group(1), "username": username, "password": password, "next": "/admin/"})
        if got is None:
            return False
        if "sessionid" not in self.cookies:
            self.stats.error("login", "/admin/login/", f"{username} not signed in")
            return False
        return True


def _path(location: str) -> str:
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _letters(n: int) -> str:
    """``n`` written in the letters a–z (0 → "a", 26 → "ba")."""
    out = ""
    while True:
        n, digit = divmod(n, 26)
        out = chr(97 + digit) + out
        if not n:
            return out


def think_model(think: float) -> str:
    """The think-time model in words, printed with every result (``think`` = mean seconds after a list)."""
    if not think:
        return "think 0 (closed loop, saturation)"
    return (f"think exp. mean {think:g} s after a list, {think * THINK_FACTOR['case page']:g} s after a case page")


def think_pause(think: float, after: str, rng: random.Random) -> float:
    """Seconds a person reads the page ``after`` ("list" or "case page") before the next click.

    Exponential with mean ``think × THINK_FACTOR[after]``, capped at ``THINK_CAP`` × that mean; 0 when
    ``think`` is 0 (closed loop).
    """
    if not think:
        return 0.0
    mean = think * THINK_FACTOR[after]
    return min(rng.expovariate(1.0 / mean), THINK_CAP * mean)


def session_loop(*, session: Session, role: str, username: str, deadline: float, rng: random.Random,
                 run_id: str, number: int, think: float = DEFAULT_THINK) -> None:
    """Work as ``username`` until ``deadline`` (time.monotonic): lists, queues, searches, cases, writes.

    Between clicks it pauses as ``think_pause`` says (``think`` = mean seconds after a list; 0: none).
    """
    stats = session.stats
    cases: list[str] = []
    queues: list[str] = []
    writes = 0
    changelist = "/admin/casework/case/"
    read = "list"  # what the person is reading before the next click (the first pause staggers the start)
    while time.monotonic() < deadline:
        pause = think_pause(think, read, rng)
        if pause:
            time.sleep(min(max(0.0, deadline - time.monotonic()), pause))
            if time.monotonic() >= deadline:
                break
        read = "list"
        roll = rng.random()
        if roll < 0.25 or not cases:
            label, path = "case list", changelist
            if queues and rng.random() < 0.6:
                label, path = "case list · queue", changelist + rng.choice(queues)
            got = session.request("GET", path, label=label)
            if got:
                found = [m.group(1) for m in CASE_LINK.finditer(got[2])]
                cases = found or cases
                queues = sorted(set(QUEUE_LINK.findall(got[2]))) or queues
            continue
        if roll < 0.35:
            session.request("GET", changelist + "?" + urlencode({"q": rng.choice(SEARCH_WORDS)}), label="search")
            continue
        path = rng.choice(cases)
        got = session.request("GET", path, label="case page")
        if not got:
            continue
        read = "case page"
        allowed = ROLE_WRITES.get(role, ())
        offered = []
        for form in page_forms(got[2]):
            match = ACT_PATH.search(form["action"])
            if not match:
                continue
            action = match.group(2)
            if action in allowed:
                offered.append((action, form, None))
            if action == "save_draft" and "submit_feedback" in allowed:
                if any(s.get("name") == "_submit_feedback" for s in form["submits"]):
                    offered.append(("submit_feedback", form, "_submit_feedback"))
        if not offered or rng.random() < 0.3:
            continue
        pause = think_pause(think, "case page", rng)  # the person reads the case, then acts
        if pause:
            time.sleep(min(max(0.0, deadline - time.monotonic()), pause))
            if time.monotonic() >= deadline:
                break
        if role == "handler" and len(offered) > 1 and rng.random() < 0.7:
            offered = [o for o in offered if o[0] == "save_draft"] or offered  # drafts are saved more than sent
        action, form, submit = rng.choice(offered)
        writes += 1
        token = f"load-{run_id}-{_letters(number)}-{_letters(writes)}"  # letters: no digit run looks like a phone
        data = form_data(form, text=f"压力测试 {token}", rng=rng, submit_name=submit)
        target = form["action"]
        if submit == "_submit_feedback":
            target = next(s.get("formaction") for s in form["submits"] if s.get("name") == submit)
        target = _path(urljoin(path, target))
        case_id = int(ACT_PATH.search(target).group(1))
        got = session.request("POST", target, label="write", data=data, expect=(302,))
        if not got:
            continue
        after = session.request("GET", _path(got[1]) or path, label="case page")
        if not after:
            continue
        shown = MESSAGE.findall(after[2])
        if any(kind == "success" for kind, _text in shown):
            stats.wrote({"case": case_id, "action": ACT_PATH.search(target).group(2), "user": username,
                         "token": token if action in ("save_draft", "submit_feedback") else ""})
        else:
            message = next((re.sub(r"<[^>]+>", "", t).strip() for k, t in shown if k == "error"), "no message")
            stats.refused(action, message)


# ---------------------------------------------------------------- the run and its report


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def load_run(*, base: str, sessions: int, seconds: float, password: str, accounts: Path = DEFAULT_ACCOUNTS,
             superuser: str = "admin", https_proxy: bool = True, seed: int = 1, think: float = DEFAULT_THINK) -> dict:
    """Drive ``sessions`` concurrent staff sessions for ``seconds`` against ``base``; return the result.

    ``think`` is the mean pause in seconds after a list (``think_pause``; 0: closed loop, saturation).

    Returns a dict: ``requests``, ``seconds``, ``rps``, ``pages`` {label: {n, p50, p95, max} in
    seconds}, ``errors`` [(label, path, what)], ``refusals`` {reason: n}, ``writes`` [{case, action,
    user, token}], ``sessions`` [(role, username)], ``signed_in``, ``started_at`` (epoch seconds),
    ``think`` (the mean given) and ``think_model`` (it in words).

    Raises:
        Refused: ``base`` is not on loopback, or ``seconds`` is over ``MAX_SECONDS``.
    """
    host, port = loopback_only(base)
    if not 0 < seconds <= MAX_SECONDS:
        raise Refused(f"refused: --seconds must be within (0, {MAX_SECONDS}]")
    plan = plan_sessions(accounts_by_role(accounts, superuser), sessions)
    stats = Stats()
    run_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6))
    signed_in = []
    ready = threading.Barrier(len(plan) + 1)
    sign_in_bound = len(plan) * REQUEST_TIMEOUT * 2 / SIGN_IN_AT_ONCE + 60
    go = threading.Event()  # set once the measured period's deadline is known
    deadline_box: list[float] = []

    signing_in = threading.Semaphore(SIGN_IN_AT_ONCE)

    def worker(number: int, role: str, username: str) -> None:
        session = Session(host=host, port=port, https_proxy=https_proxy, stats=stats)
        with signing_in:  # a morning's sign-ins are spread out; PBKDF2 is meant to be slow
            ok = session.login(username, password)
        try:
            ready.wait(timeout=sign_in_bound)
        except threading.BrokenBarrierError:
            return
        go.wait(timeout=60)
        if not ok or not deadline_box:
            return
        signed_in.append(username)
        try:
            session_loop(session=session, role=role, username=username, deadline=deadline_box[0],
                         rng=random.Random(seed * 1000 + number), run_id=run_id, number=number, think=think)
        except Exception as exc:  # a bug in the script, not the site: count it, do not hide it
            stats.error("script", "", f"{type(exc).__name__}: {exc}")
        finally:
            session.close()

    threads = [threading.Thread(target=worker, args=(n, r, u), daemon=True, name=f"load-{n}")
               for n, (r, u) in enumerate(plan)]
    for thread in threads:
        thread.start()
    try:
        ready.wait(timeout=sign_in_bound)  # every session signed in (or failed to): the clock starts
    except threading.BrokenBarrierError:
        pass
    with stats.lock:
        stats.latencies.pop("login", None)  # sign-ins are before the measured period
        stats.started, stats.wall_started = time.monotonic(), time.time()
    deadline_box.append(stats.started + seconds)
    go.set()
    for thread in threads:
        thread.join(timeout=max(0.0, deadline_box[0] - time.monotonic()) + REQUEST_TIMEOUT + 5)
    elapsed = time.monotonic() - stats.started
    with stats.lock:
        pages = {label: {"n": len(v), "p50": percentile(v, 0.5), "p95": percentile(v, 0.95), "max": max(v)}
                 for label, v in sorted(stats.latencies.items()) if v}
        requests = sum(len(v) for label, v in stats.latencies.items())
        return {
            "requests": requests, "seconds": elapsed, "rps": requests / elapsed if elapsed else 0.0,
            "pages": pages, "errors": list(stats.errors), "refusals": dict(stats.refusals),
            "writes": list(stats.writes), "sessions": plan, "signed_in": len(signed_in),
            "started_at": stats.wall_started, "think": think, "think_model": think_model(think),
        }


def _sqlite_path(database_url: str) -> str:
    """The file of a ``sqlite:///relative`` or ``sqlite:////absolute`` URL (dj-database-url's form)."""
    return database_url.split(":", 1)[1][3:]


def writes_missing(*, database_url: str, writes: list[dict], since: float) -> list[dict]:
    """Return the confirmed writes not found in the database (PostgreSQL or ``sqlite:///file``; must be empty).

    A draft save or 提交反馈 must have a draft version of that case holding its unique token; any
    other action an audit event on that case by that user since ``since`` (epoch seconds) — as many
    events as confirmed actions of that user on that case.
    """
    missing = []
    wanted: dict[tuple[int, str], int] = defaultdict(int)
    if database_url.startswith("sqlite:"):
        from datetime import datetime
        import sqlite3

        conn = sqlite3.connect(f"file:{_sqlite_path(database_url)}?mode=ro", uri=True, timeout=20)
        sql = lambda q: q.replace("%s", "?").replace("to_timestamp(?)", "?")  # noqa: E731
        # Django stores aware datetimes in SQLite as UTC text, "YYYY-MM-DD HH:MM:SS[.ffffff]".
        moment = datetime.fromtimestamp(since - 5, UTC).strftime("%Y-%m-%d %H:%M:%S")
        query = lambda q, args: conn.execute(sql(q), args)  # noqa: E731
    else:
        import psycopg

        conn = psycopg.connect(database_url, autocommit=True)
        moment = since - 5
        query = conn.execute
    try:
        for w in writes:
            if w["token"]:
                row = query("SELECT count(*) FROM casework_replydraft WHERE case_id = %s AND reply_text LIKE %s",
                            [w["case"], f"%{w['token']}%"]).fetchone()
                if not row[0]:
                    missing.append(w)
            if w["action"] != "save_draft":
                wanted[(w["case"], w["user"])] += 1
        for (case_id, user), count in wanted.items():
            (found,) = query(
                "SELECT count(*) FROM casework_caseevent e JOIN accounts_user u ON u.id = e.actor_id "
                "WHERE e.case_id = %s AND u.username = %s AND e.at >= to_timestamp(%s)",
                [case_id, user, moment]).fetchone()
            if found < count:
                missing.append({"case": case_id, "user": user, "events_expected": count, "events_found": found})
    finally:
        conn.close()
    return missing


def report_lines(result: dict, missing: list | None) -> list[str]:
    lines = [f"{result['signed_in']} of {len(result['sessions'])} sessions signed in; {result['think_model']}; "
             f"{result['requests']:,} requests in {result['seconds']:.1f} s = {result['rps']:.1f} requests/s",
             f"{'page':<20}{'n':>7}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"]
    for label, p in result["pages"].items():
        lines.append(f"{label:<20}{p['n']:>7}{p['p50'] * 1000:>9.0f}{p['p95'] * 1000:>9.0f}{p['max'] * 1000:>9.0f}")
    lines.append(f"errors: {len(result['errors'])}")
    lines += [f"  {label} {path} {what}" for label, path, what in result["errors"][:20]]
    lines.append(f"writes confirmed by the site: {len(result['writes'])}; refused (page older than the data, "
                 f"…): {sum(result['refusals'].values())}")
    lines += [f"  {n} × {reason}" for reason, n in sorted(result["refusals"].items(), key=lambda kv: -kv[1])[:10]]
    if missing is not None:
        lines.append(f"confirmed writes missing from the database: {len(missing)}")
        lines += [f"  {m}" for m in missing[:10]]
    lines.append(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    return lines


# ---------------------------------------------------------------- serving the site for the run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _SmtpSession(socketserver.StreamRequestHandler):
    """Just enough SMTP for Django's backend: every message is accepted, counted and dropped."""

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 casework-load sink")
        while True:
            line = self.rfile.readline(65536)
            if not line:
                return
            verb = line[:4].upper()
            if verb == b"EHLO":
                self.wfile.write(b"250-casework-load\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                self.reply("354 go on")
                while self.rfile.readline(1 << 20) not in (b".\r\n", b".\n", b""):
                    pass
                with self.server.lock:
                    self.server.messages += 1
                self.reply("250 queued")
            elif verb == b"QUIT":
                self.reply("221 bye")
                return
            else:  # HELO, MAIL, RCPT, RSET, NOOP
                self.reply("250 ok")


class SmtpSink(socketserver.ThreadingTCPServer):
    """A mail server on loopback that accepts everything (``messages`` counts them), so the worker
    sends the site's e-mail as in production instead of retrying against a closed port."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _SmtpSession)
        self.messages = 0
        self.lock = threading.Lock()
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True, name="smtp-sink").start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def production_env(*, database_url: str, redis_url: str, var_dir: Path, audit_key: str,
                   smtp_port: int = 2525) -> dict:
    """The environment of ``scripts/serve_production.sh`` on this machine (fresh secret, loopback host;
    mail to ``localhost:smtp_port``: an ``SmtpSink``, or nothing, and mail then waits in the outbox)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO_", "EMAIL_", "CASEWORK_", "SECURE_")) and k not in {
               "DATABASE_URL", "REDIS_URL", "SITE_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        CASEWORK_AUDIT_KEY=audit_key,
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SITE_URL="https://casework.bureau.invalid",
        EMAIL_HOST="localhost", EMAIL_PORT=str(smtp_port), EMAIL_USE_TLS="0",  # plain SMTP: only to loopback
        CASEWORK_VAR_DIR=str(var_dir),
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


class Served:
    """``scripts/serve_production.sh`` (gunicorn, Celery worker, beat) on a free loopback port."""

    def __init__(self, env: dict, *, web_workers: int | None = None, celery_workers: int = 2, log: Path | None = None,
                 port: int | None = None) -> None:
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**env, "BIND": f"127.0.0.1:{self.port}", "CELERY_WORKERS": str(celery_workers)}
        if web_workers:  # else serve_production.sh's default
            env["WEB_WORKERS"] = str(web_workers)
        self.log = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(["bash", str(ROOT / "scripts" / "serve_production.sh")], cwd=ROOT, env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve_production.sh exited with {self.process.returncode}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", "/admin/login/", headers={"X-Forwarded-Proto": "https", "Host": f"127.0.0.1:{self.port}"})
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(1)
        raise RuntimeError(f"the site did not answer within {timeout:.0f} s")

    def stop(self) -> int:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # the script's own group: gunicorn, worker, beat
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.log is not subprocess.DEVNULL:
            self.log.close()
        return self.process.returncode


def demo_setup(*, database_url: str, redis_url: str, var_dir: Path, audit_key: str, password: str) -> None:
    """``migrate`` and ``demo_setup`` (local settings, same audit key) into ``database_url``."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.local", "DATABASE_URL": database_url,
           "REDIS_URL": redis_url, "CASEWORK_VAR_DIR": str(var_dir), "CASEWORK_AUDIT_KEY": audit_key,
           "DEMO_PASSWORD": password}
    for args in (["migrate", "--noinput", "-v", "0"], ["demo_setup", "--password", password]):
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL)


def _rows(result: dict, missing: list, *, sessions: int, targets: bool) -> list[tuple[str, str, str]]:
    """``(measure, figure, target)`` rows of one run; every measure names the run's think model."""
    pages = result["pages"]

    def p(label):
        got = pages.get(label)
        return f"p50 {got['p50'] * 1000:.0f} ms / p95 {got['p95'] * 1000:.0f} ms (n={got['n']})" if got else "no request"

    tag = f"[{sessions} sessions, {result['think_model']}]"
    list_target = "p95 ≤ 300 ms" if targets else "— (saturation: a full queue, not staff)"
    return [
        (f"load {tag}: requests/s over {result['seconds']:.0f} s, production server (gunicorn, worker, beat)",
         f"{result['rps']:.1f} ({result['requests']:,} requests)", "—"),
        (f"load {tag}: case list", p("case list"), list_target),
        (f"load {tag}: case list · queue", p("case list · queue"), list_target),
        (f"load {tag}: search", p("search"), "—"),
        (f"load {tag}: case page", p("case page"), "—"),
        (f"load {tag}: writes (draft saves, transitions)", p("write"), "—"),
        (f"load {tag}: errors", f"{len(result['errors'])}", "0"),
        (f"load {tag}: writes confirmed / refused as stale / missing in the database",
         f"{len(result['writes'])} / {sum(result['refusals'].values())} / {len(missing)}", "missing 0"),
    ]


def run(*, sessions: int = 50, seconds: float = 60, database_url: str | None = None,
        redis_url: str | None = None, base: str | None = None, setup: bool = True,
        password: str = "demo2026", var_dir: str | None = None, think: float | None = None,
        saturation_seconds: float | None = None, audit_key: str | None = None,
        **_ignored) -> list[tuple[str, str, str]]:
    """Benchmark part (``scripts/bench.py``): serve the demo bureau in production mode and load it twice.

    First ``sessions`` staff sessions under the think-time model (``think`` = mean seconds after a
    list, default ``DEFAULT_THINK``; the issue's targets apply to this run) for ``seconds``; then the
    same sessions with no think time for ``saturation_seconds`` (default ``min(seconds, 30)``; 0 skips
    it): the requests/s at which the server saturates. With ``base`` the site already running there is
    loaded; otherwise ``database_url`` (PostgreSQL) gets the demo bureau (``setup``; ``audit_key`` or
    ``CASEWORK_AUDIT_KEY`` when the data is already there) and ``scripts/serve_production.sh``
    serves it for the run.

    Returns ``(measure, figure, target)`` rows; each measure names its think model.
    """
    think = DEFAULT_THINK if think is None else think
    saturation_seconds = min(seconds, 30) if saturation_seconds is None else saturation_seconds
    database_url = database_url or os.environ.get("LOAD_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cw_bench_load")
    redis_url = redis_url or os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/6")
    served = None
    if base is None:
        var = Path(var_dir or os.environ.get("CASEWORK_VAR_DIR", "/tmp/casework-load")) / "load"
        var.mkdir(parents=True, exist_ok=True)
        key = audit_key or (None if setup else os.environ.get("CASEWORK_AUDIT_KEY")) or secrets.token_urlsafe(32)
        if setup:
            _database_recreate(database_url)
            demo_setup(database_url=database_url, redis_url=redis_url, var_dir=var, audit_key=key, password=password)
        sink = SmtpSink()
        served = Served(production_env(database_url=database_url, redis_url=redis_url, var_dir=var, audit_key=key,
                                       smtp_port=sink.port), log=var / "serve.log")
    runs = []
    try:
        if served:
            served.wait_ready()
            base = served.base
            outbox_drain(database_url=database_url)
        runs.append((load_run(base=base, sessions=sessions, seconds=seconds, password=password, think=think), True))
        if saturation_seconds and think:
            runs.append((load_run(base=base, sessions=sessions, seconds=saturation_seconds, password=password,
                                  think=0.0, seed=2), False))
    finally:
        if served:
            served.stop()
            sink.stop()
    rows = []
    for result, targets in runs:
        missing = writes_missing(database_url=database_url, writes=result["writes"], since=result["started_at"])
        rows += _rows(result, missing, sessions=sessions, targets=targets)
    return rows


def outbox_unsent(database_url: str, *, after_id: int = 0) -> int:
    """Return how many e-mails of the outbox (those with an id above ``after_id``) are not sent yet
    (PostgreSQL or ``sqlite:///file``)."""
    if database_url.startswith("sqlite:"):
        import sqlite3

        conn = sqlite3.connect(f"file:{_sqlite_path(database_url)}?mode=ro", uri=True, timeout=20)
    else:
        import psycopg

        conn = psycopg.connect(database_url, autocommit=True)
    try:
        return conn.execute(f"SELECT count(*) FROM casework_notification WHERE sent_at IS NULL AND id > {int(after_id)}"
                            ).fetchone()[0]
    finally:
        conn.close()


def outbox_drain(*, database_url: str, timeout: float = 180) -> int:
    """Wait (at most ``timeout`` s) until the worker has sent the e-mails waiting when the site started
    (``demo_setup`` leaves ~1,800 for the first flush), so the measured period is not that backlog;
    return how many are still unsent."""
    deadline = time.monotonic() + timeout
    while (left := outbox_unsent(database_url)) and time.monotonic() < deadline:
        print(f"waiting for the worker to send the outbox backlog: {left} e-mails unsent", file=sys.stderr, flush=True)
        time.sleep(5)
    return left


def _database_recreate(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="the site, e.g. http://127.0.0.1:8000 (loopback only)")
    parser.add_argument("--serve", action="store_true", help="serve the site with scripts/serve_production.sh")
    parser.add_argument("--setup-demo", action="store_true", help="with --serve: recreate the database with demo data")
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--think", type=float, default=DEFAULT_THINK,
                        help=f"mean seconds a person reads a list before the next click, exponential; twice that "
                             f"after a case page (default {DEFAULT_THINK:g}; 0: closed loop, each session sends its "
                             f"next request as soon as the last is answered: the saturation figure)")
    parser.add_argument("--saturation-seconds", type=float, default=None,
                        help="with --serve: then run the same sessions with think 0 this long (default "
                             "min(--seconds, 30); 0: skip)")
    parser.add_argument("--password", default=os.environ.get("DEMO_PASSWORD", "demo2026"))
    parser.add_argument("--accounts", type=Path, default=DEFAULT_ACCOUNTS)
    parser.add_argument("--superuser", default="admin")
    parser.add_argument("--no-https-proxy", action="store_true",
                        help="do not send X-Forwarded-Proto: https (a site without the production proxy header)")
    parser.add_argument("--database-url", help="check afterwards that every confirmed write is in this database")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/6"))
    parser.add_argument("--json", type=Path, help="write the full result here")
    args = parser.parse_args(argv)
    if args.serve:
        rows = run(sessions=args.sessions, seconds=args.seconds, database_url=args.database_url,
                   redis_url=args.redis_url, setup=args.setup_demo, password=args.password, think=args.think,
                   saturation_seconds=args.saturation_seconds)
        for measure, figure, target in rows:
            print(f"{measure}: {figure} (target {target})")
        failed = [r for r in rows if (r[0].endswith(": errors") and r[1] != "0")
                  or (r[2] == "missing 0" and not r[1].endswith("/ 0"))]
        return 1 if failed else 0
    if not args.base:
        parser.error("--base or --serve is required")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    result = load_run(base=args.base, sessions=args.sessions, seconds=args.seconds, password=args.password,
                      accounts=args.accounts, superuser=args.superuser, https_proxy=not args.no_https_proxy,
                      think=args.think)
    missing = None
    if args.database_url:
        missing = writes_missing(database_url=args.database_url, writes=result["writes"], since=result["started_at"])
    print("\n".join(report_lines(result, missing)))
    if args.json:
        args.json.write_text(json.dumps({**result, "missing": missing}, ensure_ascii=False, indent=1, default=str))
    return 0 if not result["errors"] and not missing else 1


if __name__ == "__main__":
    sys.exit(main())
