"""Sign-in throttling lives in the database: it survives a new browser session, a reload and another server
process (a second engine and session factory), on SQLite and PostgreSQL; it slows wrong tries down and never
keeps a correct code or password out; every wrong try gets the same words; nothing typed is stored; an unknown
code prefix costs the same argon2 verify as a known one; ``unlock`` lifts the waits; ``hash-password`` refuses
weak passwords."""

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


class Waits(list):
    """Records a sign-in's waits instead of sleeping them."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def at_address(address: str) -> signin.SignInThrottle:
    throttle = browser()
    throttle.ip = address
    return throttle


def test_prefix_throttle_slows_wrong_codes_and_lets_the_right_one_in_from_another_process(db_url, Session,
                                                                                        make_study):
    _, _, codes = make_study(n_cases=2, n_readers=2)
    (rid, code), (other_id, other_code) = list(codes.items())
    now, waits, messages = utcnow(), Waits(), set()
    for k in range(5):  # each try from a new browser session, as after a reload
        res = signin.sign_in(Session, browser(), wrong_code(code, k), now=now, sleep=waits)
        assert res.reader_id is None and not res.ok
        messages.add(res.message)
    assert messages == {signin.WRONG_CODE}  # the same words every time: no tries left, no unlock time
    assert waits == [1.0, 2.0]  # three free failures on the prefix, then a wait doubling per failure
    # another server process, another browser: the right code waits its turn, then gets in
    res = signin.sign_in(new_process(db_url), browser(), code, now=now, sleep=waits)
    assert res.reader_id == rid and res.waited == 4.0 and res.session_id and res.ticket
    # a reader with another prefix never waited meanwhile
    assert readers.normalise_code(other_code)[:4] != readers.normalise_code(code)[:4]
    assert signin.sign_in(Session, browser(), other_code, now=now, sleep=waits).waited == 0
    # the success forgot its prefix's failures
    assert signin.sign_in(Session, browser(), wrong_code(code), now=now, sleep=waits).waited == 0
    assert actions(Session, "reader.sign_in_failed") == 6
    assert actions(Session, "reader.sign_in_throttled") == 3
    dump = audit_dump(Session) + counter_dump(Session)
    for k in range(5):
        typed = wrong_code(code, k)
        assert typed not in dump and typed.replace("-", "") not in dump and typed[5:] not in dump


def test_25_wrong_codes_from_one_address_never_keep_a_correct_code_or_password_out(db_url, Session, make_study,
                                                                                  investigator):
    """Behind a hospital NAT or a same-host proxy every reader shares one address."""
    _, _, codes = make_study(n_cases=2, n_readers=1, build=False)
    (rid, code), = codes.items()
    taken = readers.normalise_code(code)[:4]
    now, waits = utcnow(), Waits()
    prefixes = [p for p in (a + b + "QQ" for a in "ABCDEFGH" for b in "JKMNP") if p != taken]
    for i in range(25):  # a new prefix and a new browser each time: only the address ties them together
        factory = Session if i % 2 else new_process(db_url)
        res = signin.sign_in(factory, at_address("203.0.113.7"), f"{prefixes[i]}-RRRR-SSSS", now=now,
                             sleep=waits)
        assert res.message == signin.WRONG_CODE
    assert waits and max(waits) == lockout.CURVES["client:ip"].cap  # slowed down, capped at 10 s
    assert len(waits) == 25 - lockout.CURVES["client:ip"].free
    res = signin.sign_in(new_process(db_url), at_address("203.0.113.7"), code, now=now, sleep=waits)
    assert res.reader_id == rid and res.waited == lockout.CURVES["client:ip"].cap
    inv = signin.investigator_sign_in(Session, at_address("203.0.113.7"), "lead", INVESTIGATOR_PASSWORD, now=now,
                                      sleep=waits)
    assert inv.ok and inv.waited <= lockout.CURVES["client:ip"].cap
    elsewhere = signin.sign_in(new_process(db_url), at_address("198.51.100.9"), code, now=now, sleep=waits)
    assert elsewhere.reader_id == rid and elsewhere.waited == 0
    assert actions(Session, "reader.sign_in_throttled") == 16


def test_the_same_answer_for_every_user_name_no_oracle(Session, investigator):
    """Unknown names and the configured one share one scope: the same message and the same waits."""
    now = utcnow()

    def tries(names):
        waits, messages = Waits(), []
        for name in names:
            messages.append(signin.investigator_sign_in(Session, browser(), name, "not the password", now=now,
                                                        sleep=waits).message)
        return waits, messages

    waits, messages = tries(["admin", "root", "administrator", "postgres", "sa", "lead", "root", "lead"])
    assert set(messages) == {signin.WRONG_PASSWORD}
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0]  # one curve for all names: nothing says which name exists
    res = signin.investigator_sign_in(Session, browser(), "lead", INVESTIGATOR_PASSWORD, now=now, sleep=waits)
    assert res.ok and res.waited == 30.0  # slowed, capped, in


def test_empty_presses_count_nothing(Session, investigator):
    waits = Waits()
    for _ in range(10):
        assert signin.sign_in(Session, browser(), "   ", sleep=waits).message == signin.EMPTY_CODE
        assert signin.investigator_sign_in(Session, browser(), "", "", sleep=waits).message == signin.EMPTY_PASSWORD
    assert waits == [] and actions(Session, "reader.sign_in_failed") == 0
    assert counter_dump(Session) == "[]"


def test_parallel_tries_from_two_processes_each_wait_longer(db_url, Session, make_study, monkeypatch):
    _, _, codes = make_study(n_cases=2, n_readers=1, build=False)
    (_, code), = codes.items()
    counting = CountingHasher()
    monkeypatch.setattr(readers, "HASHER", counting)
    processes = [Session, new_process(db_url)]
    now, results = utcnow(), []

    def attempt(i):
        results.append(signin.sign_in(processes[i % 2], browser(), wrong_code(code, i), now=now, sleep=Waits()))

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 12 and all(r.reader_id is None for r in results)
    # counted before checking: the burst sees the prefix's failures 0..11, so the waits grow per try
    assert sorted(r.waited for r in results) == sorted(lockout.CURVES["reader_code"].delay(n) for n in range(12))
    assert counting.verifies == 12 == actions(Session, "reader.sign_in_failed")


def test_a_cap_on_the_servers_rate_of_wrong_tries(Session):
    """Wrong tries from everywhere (new address, new prefix each time) still slow down together."""
    now, waits = utcnow(), Waits()
    free = lockout.CURVES[lockout.GLOBAL].free
    for i in range(free + 3):
        prefix = "".join(readers.ALPHABET[(i // len(readers.ALPHABET) ** k) % len(readers.ALPHABET)] for k in range(4))
        signin.sign_in(Session, at_address(f"198.18.{i // 250}.{i % 250}"), f"{prefix}-RRRR-SSSS", now=now, sleep=waits)
    assert waits == [0.5, 1.0, 2.0]


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


def test_investigator_throttle_holds_across_processes_and_unlock_lifts_it(db_url, Session, investigator, capsys):
    from study.cli import main

    now, waits = utcnow(), Waits()
    for i in range(6):
        assert not signin.investigator_sign_in(Session, browser(), "lead", f"guess number {i}", now=now,
                                               sleep=waits).ok
    assert waits == [1.0, 2.0, 4.0]
    assert main(["unlock", "--db", db_url, "--reason", "the lead mistyped, confirmed by phone",
                 "--actor", "it-desk"]) == 0
    assert "investigator" in capsys.readouterr().out
    res = signin.investigator_sign_in(new_process(db_url), browser(), "lead", INVESTIGATOR_PASSWORD, now=now,
                                      sleep=waits)
    assert res.ok and res.waited == 0
    with Session() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "sign_in.unlocked"))
    assert event.actor == "it-desk" and event.after["reason"] == "the lead mistyped, confirmed by phone"
    assert lockout.INVESTIGATOR in event.after["scopes"]
    assert main(["unlock", "--db", db_url, "--reason", "x", "--address", "not an address"]) == 2


def test_failed_investigator_sign_in_stores_no_typed_secret(Session, investigator):
    throttle = browser()
    typed_user = "Secret-typed-into-user-field 42"
    typed_passwords = ["first wrong password zq1", "second wrong password zq2"]
    signin.investigator_sign_in(Session, throttle, typed_user, INVESTIGATOR_PASSWORD)  # password in the right field
    signin.investigator_sign_in(Session, throttle, typed_user, typed_passwords[0])
    signin.investigator_sign_in(Session, throttle, "lead", typed_passwords[1])
    assert signin.investigator_sign_in(Session, throttle, "lead", INVESTIGATOR_PASSWORD).ok
    dump = audit_dump(Session) + counter_dump(Session)
    assert actions(Session, "investigator.sign_in_failed") == 3
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


@pytest.mark.parametrize("peer, forwarded, trusted, expected", [
    ("::ffff:127.0.0.1", None, "", "127.0.0.1"),  # an IPv4 client through an IPv6 socket
    (None, "203.0.113.7", "", "127.0.0.1"),  # no trusted proxy: the header is not read
    (None, "203.0.113.7", "127.0.0.1, ::1", "203.0.113.7"),  # nginx on this host
    ("::ffff:127.0.0.1", "203.0.113.7", "127.0.0.1", "203.0.113.7"),
    ("198.51.100.1", "203.0.113.7", "127.0.0.1", "198.51.100.1"),  # not from the proxy: the header is a lie
    ("10.0.0.2", "1.2.3.4, 203.0.113.7, 10.0.0.9", "10.0.0.0/8", "203.0.113.7"),  # spoofed left part ignored
    ("10.0.0.2", "garbage, 203.0.113.7", "10.0.0.0/8", "203.0.113.7"),
    ("10.0.0.2", "203.0.113.7, garbage", "10.0.0.0/8", "10.0.0.2"),  # unreadable: do not read past it
])
def test_client_address_behind_a_trusted_proxy(monkeypatch, peer, forwarded, trusted, expected):
    if trusted:
        monkeypatch.setenv("REVISION_TRUSTED_PROXIES", trusted)
    else:
        monkeypatch.delenv("REVISION_TRUSTED_PROXIES", raising=False)
    assert signin.client_address_of(peer, forwarded) == expected


def test_a_bad_trusted_proxy_setting_is_refused_saying_what_to_write(monkeypatch):
    monkeypatch.setenv("REVISION_TRUSTED_PROXIES", "127.0.0.1, nginx-host")
    with pytest.raises(ValueError, match="'nginx-host' is not an address or a network"):
        signin.check_settings()


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
        signin.sign_in(Session, browser(), f"AAA{'BCD'[i]}-RRRR-SSSS", now=start, sleep=Waits())
    with Session() as s:
        assert len(list(s.scalars(select(SignInCounter)))) == 7  # a browser session and a prefix each, the server
    signin.sign_in(Session, browser(), "EEEE-RRRR-SSSS", now=start + lockout.WINDOW + timedelta(seconds=1))
    with Session() as s:
        scopes = sorted(r.scope for r in s.scalars(select(SignInCounter)))
    assert len(scopes) == 3 and lockout.GLOBAL in scopes and scopes[-1] == "reader_code:EEEE"


# --- the pages: a reload (a new AppTest is a new browser session) does not lift the throttle ----------

def _app(monkeypatch, tmp_path):
    from tests.app_helpers import make_study as make_app_study

    url, _, codes = make_app_study(tmp_path, n_readers=1)
    monkeypatch.setenv("REVISION_DB_URL", url)
    return url, codes[0]


def test_reader_page_throttle_survives_a_reload_and_the_right_code_gets_in(monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    from testsupport.app import APP

    waits = Waits()
    monkeypatch.setattr(signin, "wait", waits)
    url, code = _app(monkeypatch, tmp_path)
    for k in range(5):
        at = AppTest.from_file(APP, default_timeout=60)  # a reload each time
        at.switch_page("pages/reader_signin.py").run()
        at.text_input(key="access_code").input(wrong_code(code, k))
        at.button[-1].click().run()
        assert not at.exception, at.exception
        assert [w.value for w in at.warning] == [signin.WRONG_CODE]
    assert waits == [1.0, 2.0]  # the prefix's count held across the reloads
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/reader_signin.py").run()
    at.text_input(key="access_code").input(code)
    at.button[-1].click().run()
    assert at.session_state["role"] == "reader" and waits[-1] == 4.0


def test_investigator_page_throttle_survives_a_new_browser(monkeypatch, tmp_path, investigator):
    from streamlit.testing.v1 import AppTest

    from testsupport.app import APP

    waits = Waits()
    monkeypatch.setattr(signin, "wait", waits)
    _app(monkeypatch, tmp_path)

    def attempt(user, password):
        at = AppTest.from_file(APP, default_timeout=60)
        at.switch_page("pages/investigator_signin.py").run()
        at.text_input(key="inv_user").input(user)
        at.text_input(key="inv_password").input(password)
        at.button[-1].click().run()
        assert not at.exception, at.exception
        return at

    for i, name in enumerate(["lead", "admin", "root", "lead", "root"]):
        at = attempt(name, f"wrong guess {i}")
        assert [e.value for e in at.error] == [signin.WRONG_PASSWORD]
    assert waits == [1.0, 2.0]
    at = attempt("lead", INVESTIGATOR_PASSWORD)
    assert at.session_state["role"] == "investigator" and waits[-1] == 4.0
