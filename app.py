"""cnnviz: `streamlit run app.py`. Builds the navigation; each page is a script in cnnviz/ui/pages/."""

import streamlit as st

from cnnviz.ui.navigation import HOME, PAGES

st.set_page_config(page_title="cnnviz", page_icon=":material/grid_on:", layout="wide")

pages = [
    st.Page(spec.path, title=spec.title, icon=spec.icon, url_path=spec.url_path, default=spec is HOME)
    for spec in [HOME, *PAGES]
]
st.navigation(pages).run()
