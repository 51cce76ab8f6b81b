"""What the real eTelecom platform does about each behaviour its docs leave open, found read-only.

Nobody building this provider could reach the platform, so several behaviours are guesses the
client copes with either way (``docs/contract.md``). This package finds which one a platform plays,
and the connection setting that follows::

    python -m airflow_provider_etelecom.contract --conn-id etelecom_default

* :mod:`.probe`: raw HTTP calls (plain ``requests``), with a budget for ``RequestConsent`` (0 unless
  allowed) and the newest pages read once (:func:`~.probe.walk_newest`);
* :mod:`.detectors`: one detector per behaviour, each returning a :class:`~.detectors.Finding`;
  ``tests/contract/test_unknowns.py`` proves each against the simulator's variants and runs it
  against the real platform when given a key;
* :mod:`.runner`: every detector in the order their results feed each other;
* :mod:`.report`: the printed report and the connection extra to add;
* ``__main__``: the command line.

No Airflow import here (the command imports it only to read ``--conn-id``). The package is a command,
not an API: it exports no names (``tests/test_layout.py``).
"""

from __future__ import annotations
