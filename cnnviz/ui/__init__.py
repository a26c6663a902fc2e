"""The browser app, one sub-package per page (``convolution/``, ``training/``, ``predict/``: its
Streamlit script ``page``, the cached work and widgets behind it, its Plotly figures, its benchmark),
with the parts every page shares beside them (``navigation``, ``host``, ``widgets``, ``home_page``,
the figures' wire format ``plotly_wire`` and panel kit ``panels``).

Only this sub-package imports Streamlit and Plotly.
"""
