"""The browser app: Streamlit pages (``pages/``) and the Plotly figures they show (``figures/``).

Only this sub-package imports Streamlit and Plotly.
"""
