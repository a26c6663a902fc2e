"""One Streamlit script per page; :mod:`cnnviz.ui.navigation` lists them."""
