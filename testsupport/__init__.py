"""Support code that both the test suite (``tests/``) and the benchmarks (``bench/``) use: small study
databases and their TOML, fake AI outputs, the app server on a free port, Chromium via Playwright, AppTest
sign-in steps, a throwaway PostgreSQL server and the lme4 reference fit.

Not product code: nothing under ``study/``, ``revision_core/``, ``pages/`` or ``components/`` imports it
(tests/test_testsupport.py checks). Pytest fixtures stay in ``tests/`` (conftest.py files); what only the
tests use stays there too.

- ``testsupport.studies``: ``study_toml``, the label keys, a model card, a valid answer (``tests/study``'s data)
- ``testsupport.app``: app studies of photographs, the served app, Chromium, AppTest reader steps
- ``testsupport.postgres``: ``find_pg_bin`` and ``PostgresServer`` (initdb + pg_ctl in a temporary folder)
- ``testsupport.glmer``: lme4's ``glmer`` run through Rscript (``testsupport/r/glmer_fit.R``)
"""
