"""Serving a class: the limits a host sets (``limits``) and the load test, which starts or finds a
server (``server_process``), speaks Streamlit's own protocol to it (``session_client``), plays a class
of students (``loadtest_scenario``), samples the server's memory and CPU (``loadtest_sampling``) and
reports what it measured (``loadtest_report``)."""
