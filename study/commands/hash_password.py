"""``python -m study hash-password``: the argon2 hash of a new investigator password.

The password is read from a terminal prompt (twice, not echoed) or, with ``--stdin``, from the first line
of standard input; never from the command line, where it would land in the shell history and in every
other user's ``ps``. Weak passwords are refused. Only the hash is printed, ready for
``REVISION_INVESTIGATOR_PASSWORD_HASH`` or ``password_hash`` under ``[investigator]`` in
``.streamlit/secrets.toml``.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from revision_core.cli import UsageError

MIN_LENGTH = 12
# a few of the most used passwords and study-flavoured guesses (compared without case, spaces, digits and
# punctuation at the ends, so "Password123!" is caught as "password")
COMMON = frozenset("""
password passw0rd p@ssword p@ssw0rd qwerty qwertyuiop qwertyuiopasdf asdfghjkl azerty letmein welcome admin
administrator iloveyou monkey dragon football baseball sunshine princess trustno1 master superman batman
changeme secret abc123 abcdefghijkl abcdefghijklmnop 123456789012 111111111111 000000000000 aaaaaaaaaaaa
investigator revision reviewer reader ophthalmology ophthalmologist retina fundus study readerstudy
research hospital doctor clinic correcthorsebatterystaple
""".split())


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stdin", action="store_true",
                        help="read the password from the first line of standard input instead of a prompt")


def weakness(password: str) -> str | None:
    """Why ``password`` is too weak, or None."""
    if len(password) < MIN_LENGTH:
        return f"it has {len(password)} characters; use at least {MIN_LENGTH}"
    classes = sum(any(test(c) for c in password) for test in (str.islower, str.isupper, str.isdigit,
                                                               lambda c: not c.isalnum()))
    if classes < 2:
        return "it uses only one kind of character; mix letters with digits, capitals, symbols or spaces"
    if len(set(password)) < 5:
        return "it repeats too few different characters"
    core = password.lower().strip(" 0123456789!@#$%^&*?.,-_")
    if password.lower() in COMMON or core in COMMON or core.replace(" ", "") in COMMON:
        return "it is a well-known password"
    return None


def _read(args) -> str:
    if args.stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise UsageError("no terminal to prompt on: pipe the password with --stdin")
    first = getpass.getpass("New investigator password: ")
    if getpass.getpass("Repeat it: ") != first:
        raise UsageError("the two passwords differ; nothing was made")
    return first


def run(args) -> int:
    from argon2 import PasswordHasher

    password = _read(args)
    problem = weakness(password)
    if problem:
        raise UsageError(f"password refused: {problem}. Nothing was made.")
    print(PasswordHasher().hash(password))
    return 0
