"""Explore the network: the page, its widgets and figures."""
