"""Every Plotly figure of the app is built here, from plain data computed by :mod:`cnnviz`."""
