"""Sign-in lockouts live in the database: they survive a new browser session, a reload and another server
process (a second engine and session factory), on SQLite and PostgreSQL; nothing typed is stored; an unknown
code prefix costs the same argon2 verify as a known one; ``hash-password`` refuses weak passwords."""

from __future__ import annotations

import io
import json
import threading
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from study.storage import db
from study.domain import lockout, readers
from study.storage.models import AuditEvent, SignInCounter, utcnow
from study.services import signin

CHEAP = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}
INVESTIGATOR_PASSWORD = "Lead-investigator 2026 password"


class CountingHasher(PasswordHasher):
    """The cheap test hasher, counting verify calls (thread-safe)."""

    def __init__(self):
        super().__init__(**CHEAP)
        self.verifies = 0
        self._lock = threading.Lock()

    def verify(self, hash, password):
        with self._lock:
            self.verifies += 1
        return super().verify(hash, password)


def new_process(db_url):
    """A fresh engine and session factory: what a second server process has."""
    return db.session_factory(db.make_engine(db_url))


def browser() -> signin.SignInThrottle:
    """A new browser session (or a reload: Streamlit starts a new session state)."""
    return signin.SignInThrottle(signin.new_client_id())


def wrong_code(code: str, k: int = 0) -> str:
    """The same prefix as ``code`` with a different rest (never the real code)."""
    flat = readers.normalise_code(code)
    rest = "".join(readers.ALPHABET[(readers.ALPHABET.index(c) + 1 + k) % len(readers.ALPHABET)] for c in flat[4:])
    return f"{flat[:4]}-{rest[:4]}-{rest[4:]}"


def unused_prefix(codes) -> str:
    taken = {readers.normalise_code(c)[:4] for c in codes}
    return next(p for p in ("ZZZZ", "YYYY", "XXXX", "WWWW") if p not in taken)


def audit_dump(factory) -> str:
    with factory() as s:
        return json.dumps([{"actor": e.actor, "action": e.action, "entity": e.entity, "entity_id": e.entity_id,
                            "before": e.before, "after": e.after} for e in s.scalars(select(AuditEvent))])


def counter_dump(factory) -> str:
    with factory() as s:
        return json.dumps([r.scope for r in s.scalars(select(SignInCounter))])


def actions(factory, action: str) -> int:
    with factory() as s:
        return len(list(s.scalars(select(AuditEvent).where(AuditEvent.action == action))))


def test_reader_prefix_lockout_survives_new_browser_sessions_and_a_new_process(db_url, Session, make_study):
    _, _, codes = make_study(n_cases=2, n_readers=2)
    (rid, code), (other_id, other_code) = list(codes.items())
    now = utcnow()
    messages = []
    for k in range(lockout.MAX_FAILURES):  # each try from a new browser session, as after a reload
        res = signin.sign_in(Session, browser(), wrong_code(code, k), now=now)
        assert res.reader_id is None
        messages.append(res.message)
    assert messages[0] == "That code is not valid. 4 attempt(s) left before a lockout."
    assert messages[-1] == "5 wrong codes: sign-in is locked for 10 minutes."
    # another server process, another browser: even the right code is refused while the prefix is locked
    other_process = new_process(db_url)
    res = signin.sign_in(other_process, browser(), code, now=now + timedelta(minutes=1))
    assert res.reader_id is None and res.locked
    assert res.message.startswith("Too many wrong codes. Try again after")
    # the lockout is per prefix: a reader with another prefix signs in meanwhile
    assert readers.normalise_code(other_code)[:4] != readers.normalise_code(code)[:4]
    assert signin.sign_in(other_process, browser(), other_code, now=now + timedelta(minutes=1)).reader_id == other_id
    # after the lockout the right code works, and the prefix's count starts again
    later = now + lockout.LOCKOUT + timedelta(seconds=1)
    assert signin.sign_in(new_process(db_url), browser(), code, now=later).reader_id == rid
    res = signin.sign_in(Session, browser(), wrong_code(code), now=later)
    assert res.message == "That code is not valid. 4 attempt(s) left before a lockout."
    assert actions(Session, "reader.sign_in_failed") == 6
    assert actions(Session, "reader.sign_in_locked") == 1
    assert actions(Session, "reader.sign_in_refused") == 1
    dump = audit_dump(Session) + counter_dump(Session)
    for k in range(lockout.MAX_FAILURES):
        typed = wrong_code(code, k)
        assert typed not in dump and typed.replace("-", "") not in dump and typed[5:] not in dump


def test_client_lockout_counts_across_reloads_and_processes_by_ip_address(db_url, Session, make_study):
    _, _, codes = make_study(n_cases=2, n_readers=1, build=False)
    (rid, code), = codes.items()
    taken = readers.normalise_code(code)[:4]
    now = utcnow()
    prefixes = [p for p in (a + b + "QQ" for a in "ABCDEFGH" for b in "JKMN") if p != taken]
    for i in range(lockout.CLIENT_MAX_FAILURES):  # a new prefix each time: only the address ties them together
        throttle = browser()
        throttle.ip = "203.0.113.7"
        factory = Session if i % 2 else new_process(db_url)
        res = signin.sign_in(factory, throttle, f"{prefixes[i]}-RRRR-SSSS", now=now)
        assert not res.locked or i == lockout.CLIENT_MAX_FAILURES - 1
    assert res.locked and res.message == "20 wrong codes: sign-in is locked for 10 minutes."
    throttle = browser()
    throttle.ip = "203.0.113.7"
    res = signin.sign_in(new_process(db_url), throttle, code, now=now)
    assert res.reader_id is None and res.locked
    elsewhere = browser()
    elsewhere.ip = "198.51.100.9"
    assert signin.sign_in(new_process(db_url), elsewhere, code, now=now).reader_id == rid


def test_one_browser_session_is_locked_after_five_whatever_the_prefix(Session, make_study):
    _, _, codes = make_study(n_cases=2, n_readers=1, build=False)
    (rid, code), = codes.items()
    throttle, now = browser(), utcnow()
    for prefix in ("AAAA", "BBBB", "CCCC", "DDDD", "EEEE"):
        res = signin.sign_in(Session, throttle, f"{prefix}-RRRR-SSSS", now=now)
    assert res.locked
    assert signin.sign_in(Session, throttle, code, now=now).locked


def test_parallel_tries_from_two_processes_get_at_most_the_limit_verified(db_url, Session, make_study, monkeypatch):
    _, _, codes = make_study(n_cases=2, n_readers=1, build=False)
    (_, code), = codes.items()
    counting = CountingHasher()
    monkeypatch.setattr(readers, "HASHER", counting)
    processes = [Session, new_process(db_url)]
    now, results = utcnow(), []

    def attempt(i):
        results.append(signin.sign_in(processes[i % 2], browser(), wrong_code(code, i), now=now))

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 12 and all(r.reader_id is None for r in results)
    assert counting.verifies <= lockout.MAX_FAILURES
    assert actions(Session, "reader.sign_in_failed") == counting.verifies
    assert sum(r.locked for r in results) >= 12 - lockout.MAX_FAILURES


def test_unknown_prefix_costs_one_argon2_verify_like_a_known_one(Session, make_study, monkeypatch):
    _, _, codes = make_study(n_cases=2, n_readers=2, build=False)
    code = next(iter(codes.values()))
    counting = CountingHasher()
    monkeypatch.setattr(readers, "HASHER", counting)
    with Session() as s:
        assert readers.authenticate(s, wrong_code(code)) is None
        known = counting.verifies
        assert readers.authenticate(s, f"{unused_prefix(codes.values())}-RRRR-SSSS") is None
        unknown = counting.verifies - known
        assert readers.authenticate(s, code) is not None
    assert known == unknown == 1
    # and through the sign-in page's function as well
    before = counting.verifies
    signin.sign_in(Session, browser(), f"{unused_prefix(codes.values())}-TTTT-UUUU")
    assert counting.verifies - before == 1


@pytest.fixture
def investigator(monkeypatch):
    monkeypatch.setenv(signin.USER_ENV, "lead")
    monkeypatch.setenv(signin.HASH_ENV, PasswordHasher(**CHEAP).hash(INVESTIGATOR_PASSWORD))


def test_investigator_lockout_survives_new_browser_sessions_and_a_new_process(db_url, Session, investigator):
    now = utcnow()
    for i in range(lockout.MAX_FAILURES):
        res = signin.investigator_sign_in(Session, browser(), "lead", f"guess number {i}", now=now)
        assert not res.ok
    assert res.locked and "locked for 10 minutes" in res.message
    res = signin.investigator_sign_in(new_process(db_url), browser(), "lead", INVESTIGATOR_PASSWORD, now=now)
    assert not res.ok and res.locked and "Try again after" in res.message
    later = now + lockout.LOCKOUT + timedelta(seconds=1)
    assert signin.investigator_sign_in(new_process(db_url), browser(), "lead", INVESTIGATOR_PASSWORD, now=later).ok
    assert actions(Session, "investigator.sign_in_locked") == 1
    assert actions(Session, "investigator.signed_in") == 1


def test_failed_investigator_sign_in_stores_no_typed_secret(Session, investigator):
    throttle = browser()
    typed_user = "Secret-typed-into-user-field 42"
    typed_passwords = ["first wrong password zq1", "second wrong password zq2"]
    signin.investigator_sign_in(Session, throttle, typed_user, INVESTIGATOR_PASSWORD)  # password in the right field
    signin.investigator_sign_in(Session, throttle, typed_user, typed_passwords[0])
    signin.investigator_sign_in(Session, throttle, "lead", typed_passwords[1])
    signin.audit_investigator(Session, typed_user, False)  # the older entry point is covered as well
    assert signin.investigator_sign_in(Session, throttle, "lead", INVESTIGATOR_PASSWORD).ok
    dump = audit_dump(Session) + counter_dump(Session)
    assert actions(Session, "investigator.sign_in_failed") == 4
    for secret in [typed_user, INVESTIGATOR_PASSWORD, *typed_passwords]:
        assert secret not in dump and secret.lower() not in dump.lower()
    assert "unknown user" in dump and '"lead"' in dump


def test_failed_reader_sign_in_stores_no_typed_code(Session, make_study):
    _, _, codes = make_study(n_cases=2, n_readers=1, build=False)
    typed = ["AAAA-BBBB-CCCC", "not a code at all, maybe a password", "K7QX3MNPW9RT"]
    throttle = browser()
    for t in typed:
        signin.sign_in(Session, throttle, t)
    dump = audit_dump(Session) + counter_dump(Session)
    for t in typed:
        flat = t.replace("-", "")
        assert t not in dump and flat not in dump and flat[4:] not in dump


# --- python -m study hash-password --------------------------------------------------------------------

def hash_password(monkeypatch, capsys, text: str, *argv: str) -> tuple[int, str, str]:
    from study.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    rc = main(["hash-password", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("weak, why", [
    ("Sh0rt pw", "at least 12"),
    ("alllowercaseletters", "one kind of character"),
    ("123456789012345", "one kind of character"),
    ("Password123!", "well-known"),
    ("correct horse battery staple", "well-known"),
    ("abababababab1", "too few different"),
])
def test_hash_password_refuses_weak_passwords(monkeypatch, capsys, weak, why):
    rc, out, err = hash_password(monkeypatch, capsys, weak + "\n", "--stdin")
    assert rc == 2 and out == ""
    assert "password refused" in err and why in err and weak not in err


def test_hash_password_prints_only_a_hash_that_verifies(monkeypatch, capsys):
    strong = "Tr0ub4dor & three more words"
    rc, out, err = hash_password(monkeypatch, capsys, strong + "\n", "--stdin")
    assert rc == 0 and err == ""
    assert len(out.splitlines()) == 1 and out.startswith("$argon2id$") and strong not in out
    assert PasswordHasher().verify(out.strip(), strong)
    with pytest.raises(Exception):
        PasswordHasher().verify(out.strip(), strong + "x")


def test_hash_password_prompts_twice_and_never_takes_argv(monkeypatch, capsys):
    import getpass

    strong = "Tr0ub4dor & three more words"
    answers = iter([strong, strong + "!"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    stdin = io.StringIO("")
    stdin.isatty = lambda: True
    monkeypatch.setattr("sys.stdin", stdin)
    from study.cli import main

    assert main(["hash-password"]) == 2
    assert "differ" in capsys.readouterr().err
    answers = iter([strong, strong])
    assert main(["hash-password"]) == 0
    assert PasswordHasher().verify(capsys.readouterr().out.strip(), strong)
    with pytest.raises(SystemExit):
        main(["hash-password", strong])  # a password on the command line is not an option


def test_counters_of_long_past_failures_are_pruned(Session):
    start = utcnow()
    for i in range(3):
        signin.sign_in(Session, browser(), f"AAA{'BCD'[i]}-RRRR-SSSS", now=start)
    with Session() as s:
        assert len(list(s.scalars(select(SignInCounter)))) == 6  # a browser session and a prefix each
    signin.sign_in(Session, browser(), "EEEE-RRRR-SSSS", now=start + lockout.WINDOW + lockout.LOCKOUT + timedelta(1))
    with Session() as s:
        assert sorted(r.scope for r in s.scalars(select(SignInCounter)))[-1] == "reader_code:EEEE"
        assert len(list(s.scalars(select(SignInCounter)))) == 2


# --- the pages: a reload (a new AppTest is a new browser session) does not lift a lockout ------------

def _app(monkeypatch, tmp_path):
    from tests.app_helpers import make_study as make_app_study

    url, _, codes = make_app_study(tmp_path, n_readers=1)
    monkeypatch.setenv("REVISION_DB_URL", url)
    return url, codes[0]


def test_reader_page_lockout_survives_a_reload(monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    from tests.app_helpers import APP

    url, code = _app(monkeypatch, tmp_path)
    for k in range(lockout.MAX_FAILURES):
        at = AppTest.from_file(APP, default_timeout=60)  # a reload each time
        at.switch_page("pages/reader_signin.py").run()
        at.text_input(key="access_code").input(wrong_code(code, k))
        at.button[-1].click().run()
        assert not at.exception, at.exception
    assert any("5 wrong codes: sign-in is locked for 10 minutes." == e.value for e in at.error)
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/reader_signin.py").run()
    at.text_input(key="access_code").input(code)
    at.button[-1].click().run()
    assert "role" not in at.session_state
    assert any(e.value.startswith("Too many wrong codes. Try again after") for e in at.error)


def test_investigator_page_lockout_survives_a_new_browser(monkeypatch, tmp_path, investigator):
    from streamlit.testing.v1 import AppTest

    from tests.app_helpers import APP

    _app(monkeypatch, tmp_path)

    def attempt(user, password):
        at = AppTest.from_file(APP, default_timeout=60)
        at.switch_page("pages/investigator_signin.py").run()
        at.text_input(key="inv_user").input(user)
        at.text_input(key="inv_password").input(password)
        at.button[-1].click().run()
        assert not at.exception, at.exception
        return at

    for i in range(lockout.MAX_FAILURES):
        at = attempt("lead", f"wrong guess {i}")
    assert any("locked for 10 minutes" in e.value for e in at.error)
    at = attempt("lead", INVESTIGATOR_PASSWORD)
    assert "role" not in at.session_state
    assert any("Too many failed sign-ins" in e.value for e in at.error)
