"""The class load test: the scenario (``scenario``), what it measures on the server (``sampling``)
and the report it writes (``report``)."""
