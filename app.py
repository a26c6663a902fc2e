"""cnnviz: `streamlit run app.py`. Builds the navigation from the pages cnnviz/ui/navigation.py lists."""

from pathlib import Path

import streamlit as st

from cnnviz.ui.host import enabled_pages, limits_or_stop
from cnnviz.ui.navigation import HOME
from cnnviz.ui.widgets import keep_widget_values

# A file of ours: Streamlit 1.67 turns a ":material/...:" favicon into a fonts.gstatic.com address,
# which fails offline; a picture is served by the app itself (/media/...).
FAVICON = Path(__file__).parent / "cnnviz" / "ui" / "favicon.png"

st.set_page_config(page_title="cnnviz", page_icon=str(FAVICON), layout="wide")
limits_or_stop()  # a host's typo in a limit is shown here, before any page runs
keep_widget_values()  # settings stay as the student left them when they look at another page

pages = [
    st.Page(spec.path, title=spec.title, icon=spec.icon, url_path=spec.url_path, default=spec is HOME)
    for spec in [HOME, *enabled_pages()]
]
st.navigation(pages).run()
