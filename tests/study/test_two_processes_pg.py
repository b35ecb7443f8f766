"""Two server processes on one PostgreSQL (issue 11, item 10): lockouts, idempotent submit and the no-AI rule
hold across processes.

Each test starts two real OS processes (``python -c`` of :data:`DRIVER`) that open their own engine on the
same throwaway PostgreSQL database and call what the pages call (``study.services.signin.sign_in``,
``study.services.reader.reader_state``, ``.submit_answer``, ``.case_display``), released at
the same instant by a "go" file. Not two Streamlit servers: a sign-in through Streamlit needs a browser
session over its websocket, and these functions are exactly what the sign-in and reading pages run, with
all state in the database, so two processes calling them are two servers as far as the rules go.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from study.domain import cases, design, image_links, lockout, readers, workflow
from study.storage import db
from study.domain.config import parse_text
from study.storage.models import AIOutput, Answer, Assignment, Case, SignInCounter, Study
from study.jobs.precompute import store_ai_output
from study.services import reader as reader_service, signin
from study.domain.studies import create_study
from testsupport.studies import CARD, LABELS, SALIENCY, VALID_ANSWER, study_toml
from testsupport.studies import committed

ROOT = Path(__file__).resolve().parents[2]

DRIVER = r"""
import json, sys, time
from pathlib import Path
from argon2 import PasswordHasher
from study.storage import db
from study.domain import readers, workflow
from study.services import reader as reader_service, signin
from testsupport.studies import committed
readers.HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # as the tests' fixture
args = json.loads(sys.argv[1])
factory = db.session_factory(db.make_engine(args["url"]))
Path(args["ready"]).touch()
while not Path(args["go"]).exists():
    time.sleep(0.002)
out = []
if args["mode"] == "signin":
    for _ in range(args["tries"]):
        r = signin.sign_in(factory, signin.SignInThrottle(client_id=args["client"]), args["code"])
        out.append({"reader_id": r.reader_id, "waited": r.waited, "message": r.message})
elif args["mode"] == "submit":
    r = reader_service.submit_answer(factory, args["reader_id"], args["assignment_id"], args["answer"], args["key"])
    out.append({"answer_id": r.answer_id, "version": r.version, "replayed": r.replayed})
elif args["mode"] == "read":
    while True:
        state = reader_service.reader_state(factory, args["reader_id"])
        item = state.item
        if item is None:
            out.append({"finished": state.finished, "washout": state.washout_until is not None, "error": state.error})
            break
        shown = reader_service.case_display(factory, state, item.image_ref, item.next_image_ref)
        res = reader_service.submit_answer(factory, args["reader_id"], item.assignment_id, args["answer"],
                                f"race-{item.assignment_id}")
        out.append({"assignment_id": item.assignment_id, "condition": item.condition,
                     "aided_item": isinstance(item, workflow.AidedItem), "ai": getattr(item, "ai", None) is not None,
                     "keys": sorted(item.to_dict()), "image_ref": item.image_ref,
                     "links": [shown.screen_url, shown.full_url, *shown.prefetch], "answer_id": res.answer_id})
print(json.dumps(out))
"""


@pytest.fixture
def pg_url(pg_server):
    url = pg_server.new_database()
    db.upgrade(url)
    return url


@pytest.fixture
def pg_study(pg_url, tmp_path):
    """A crossover study (no washout) on PostgreSQL: 4 imported photographs, AI outputs with a saliency
    overlay, 2 readers, the design; returns (url, factory, study id, {reader id: code}, store)."""
    engine = db.make_engine(pg_url)
    factory = db.session_factory(engine)
    store = tmp_path / "store"
    folder = tmp_path / "photos"
    rng = np.random.default_rng(3)
    for i, label in enumerate(("amd", "glaucoma", "normal", "amd")):
        (folder / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(folder / label / f"P{i}.png")
    text = study_toml("crossover", washout=0, name="Two servers")
    with factory() as s:
        study = committed(create_study, s, parse_text(text), text)
        sid = study.id
        committed(cases.import_folder, s, sid, folder, store_root=store)
        for c in s.scalars(select(Case).where(Case.study_id == sid)):
            committed(store_ai_output, s, c.id, model_card=CARD, label_set="revision_findings", saliency_png=SALIENCY,
                            probabilities={k: 0.1 * (j + 1) for j, k in enumerate(LABELS[:-1])})
        codes = {}
        for i, years in enumerate((2, 15)):
            reader, code = committed(readers.add_reader, s, sid, display_name=f"Dr {i}", years_experience=years)
            codes[reader.id] = code
        committed(design.build_design, s, sid)
        s.get(Study, sid).model_version = CARD["version"]
        s.commit()
    yield pg_url, factory, sid, codes, store
    engine.dispose()


def _run_both(tmp_path, args_a: dict, args_b: dict) -> list[list[dict]]:
    """Start two driver processes, wait until both are ready, release them together, return their outputs."""
    go = tmp_path / "go"
    go.unlink(missing_ok=True)
    env = {k: v for k, v in {**os.environ, "PYTHONPATH": str(ROOT)}.items() if k != image_links.SECRET_ENV}
    procs, ready = [], []
    for i, args in enumerate((args_a, args_b)):
        ready.append(tmp_path / f"ready-{i}-{time.monotonic_ns()}")
        payload = json.dumps({**args, "ready": str(ready[-1]), "go": str(go)})
        procs.append(subprocess.Popen([sys.executable, "-c", DRIVER, payload], cwd=ROOT, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in ready):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            for p in procs:
                p.kill()
            pytest.fail("a driver process did not start: " + " | ".join(p.communicate()[1][-2000:] for p in procs))
        time.sleep(0.01)
    go.touch()
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    return outputs


def _other_code(code: str) -> str:
    """The same prefix (the lockout scope), a wrong rest."""
    last = code[-1]
    return code[:-1] + next(c for c in readers.ALPHABET if c != last)


def test_failed_sign_ins_split_across_two_processes_add_up_and_slow_both(pg_study, tmp_path):
    url, factory, _sid, codes, _store = pg_study
    code = next(iter(codes.values()))
    wrong = _other_code(code)
    per_process = 3  # neither process alone goes past the prefix's free tries
    a, b = _run_both(tmp_path, {"mode": "signin", "url": url, "code": wrong, "tries": per_process, "client": "server-a"},
                     {"mode": "signin", "url": url, "code": wrong, "tries": per_process, "client": "server-b"})
    results = a + b
    assert all(r["reader_id"] is None and r["message"] == signin.WRONG_CODE for r in results)
    curve = lockout.CURVES["reader_code"]
    assert sorted(r["waited"] for r in results) == [curve.delay(n) for n in range(2 * per_process)]
    prefix = readers.normalise_code(code)[:readers.GROUP_LEN]
    with factory() as s:
        row = s.scalar(select(SignInCounter).where(SignInCounter.scope == f"reader_code:{prefix}"))
        assert row.failures == 2 * per_process
    # a third process (this one), a browser never seen before: the right code waits its turn and gets in
    waits = []
    result = signin.sign_in(factory, signin.SignInThrottle(client_id="fresh-browser"), code, sleep=waits.append)
    assert result.reader_id in codes and waits == [curve.delay(2 * per_process)]


def test_the_same_submit_from_both_processes_at_once_stores_one_answer_version(pg_study, tmp_path):
    url, factory, _sid, codes, _store = pg_study
    reader_id = next(iter(codes))
    with factory() as s:
        item = committed(workflow.next_item, s, reader_id)  # shown, as the page shows it before the reader answers
    args = {"mode": "submit", "url": url, "reader_id": reader_id, "assignment_id": item.assignment_id,
            "answer": VALID_ANSWER, "key": "tab-1:submit-1"}
    a, b = _run_both(tmp_path, args, dict(args))
    assert a[0]["answer_id"] == b[0]["answer_id"] and a[0]["version"] == b[0]["version"] == 1
    assert sorted([a[0]["replayed"], b[0]["replayed"]]) == [False, True]
    with factory() as s:
        rows = list(s.scalars(select(Answer).where(Answer.assignment_id == item.assignment_id)))
    assert [(r.id, r.version) for r in rows] == [(a[0]["answer_id"], 1)]


def test_unaided_items_carry_no_ai_from_either_process_and_links_name_photographs_only(pg_study, tmp_path,
                                                                                    monkeypatch):
    url, factory, sid, codes, store = pg_study
    reader_id = next(iter(codes))
    reader_service.record_consent(factory, reader_id, "v1")  # the reading page serves items after the consent page
    args = {"mode": "read", "url": url, "reader_id": reader_id, "study_id": sid, "store": str(store),
            "answer": VALID_ANSWER}
    a, b = _run_both(tmp_path, args, dict(args))  # both servers race through the same reader's whole study
    served = [r for r in a + b if "assignment_id" in r]
    assert all(r["finished"] and not r["error"] for r in a + b if "finished" in r)
    with factory() as s:
        assignments = {x.id: x.condition for x in s.scalars(select(Assignment).where(Assignment.reader_id == reader_id))}
        per_assignment = dict(s.execute(select(Answer.assignment_id, func.count()).join(Assignment)
                                        .where(Assignment.reader_id == reader_id).group_by(Answer.assignment_id)).all())
        photographs = {c.image_sha256 for c in s.scalars(select(Case).where(Case.study_id == sid))}
        ai_rows = s.scalar(select(func.count()).select_from(AIOutput))
    assert per_assignment == {i: 1 for i in assignments}  # every reading answered once, none twice
    assert {r["assignment_id"] for r in served} == set(assignments)
    unaided = [r for r in served if r["condition"] == "unaided"]
    aided = [r for r in served if r["condition"] != "unaided"]
    assert unaided and aided and ai_rows == 4
    for r in unaided:  # the no-AI rule, whichever process served it
        assert not r["aided_item"] and not r["ai"] and "ai" not in r["keys"], r
    assert all(r["aided_item"] and r["ai"] for r in aided)
    # the signed image route: a link from either server is valid on the other (the key both found in the
    # database, no setting) and names a display file of a case photograph in the study store, never an AI output
    for r in served:
        for link in r["links"]:
            path = reader_service.photograph(factory, link.removeprefix(image_links.ROUTE + "/"))
            assert path.parent == cases.study_store(sid, store)
            assert path.name[:64] in photographs and path.read_bytes() != SALIENCY
    assert all(f.name[:64] in photographs for f in cases.study_store(sid, store).iterdir())  # no AI file to serve
    key = reader_service.link_key(factory)
    with pytest.raises(ValueError):
        image_links.image_url(key, sid, "saliency.png", reader_id=reader_id, code_version=1)
    forged = served[0]["links"][0].rsplit(".", 1)[0] + "." + "A" * 43
    with pytest.raises(image_links.LinkInvalid):
        reader_service.photograph(factory, forged.removeprefix(image_links.ROUTE + "/"))
    # revoking the reader's code ends their links, on every server
    with factory() as s:
        committed(readers.revoke, s, reader_id)
    with pytest.raises(image_links.LinkInvalid, match="withdrawn"):
        reader_service.photograph(factory, served[0]["links"][0].removeprefix(image_links.ROUTE + "/"))
