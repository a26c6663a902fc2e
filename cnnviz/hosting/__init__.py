"""Serving a class: the limits a host sets (``limits``) and the load test, which starts or finds a
server (``server_process``), speaks Streamlit's own protocol to it (``session_client``) and plays a
class of students (``loadtest``)."""
