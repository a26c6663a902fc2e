"""Load-testing a running cnnviz server with many real Streamlit sessions (no browser).

:mod:`cnnviz.loadtest.client` speaks Streamlit's websocket protocol for one session;
:mod:`cnnviz.loadtest.server` starts a server or finds one and reads its memory;
:mod:`cnnviz.loadtest.run` drives the class scenario (predictions and trainings) and reports.
"""
