"""Services by audience: what a page calls. Each owns its transactions; pages call one service each.

``signin`` (readers' and the investigator's sign-in), ``reader`` (consent, the reader's state, submitting),
``investigator`` (set-up, monitor, exports) and ``analysis`` (the analysis page). The library below them
(``study.domain``, ``study.outputs``) takes a session and never commits: a service, a command or a job opens
the transaction and commits it, so that what one operation writes is one transaction. The jobs
(``study.jobs.precompute``, ``simulate_readers``) commit their own batches, as a command does.
"""
