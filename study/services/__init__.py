"""Services by audience: what a page calls. Each owns its transactions; pages call one service each.

``signin`` (readers' and the investigator's sign-in), ``reader`` (consent, the reader's state, submitting),
``investigator`` (set-up, monitor, exports) and ``analysis`` (the analysis page). The library below them
takes a session; the aim is that it never commits (``study.domain.workflow``, ``study.domain.reader_operations`` and the set-up
functions of ``study.domain.cases``/``readers``/``design``/``studies``/``precompute`` still do).
"""
