"""Every page runs to the end under Streamlit's AppTest, without an exception."""

import pytest
from streamlit.testing.v1 import AppTest

from cnnviz.ui.navigation import HOME, PAGES
from tests.conftest import REPO


@pytest.mark.parametrize("spec", [HOME, *PAGES], ids=lambda s: s.url_path)
def test_page_runs_without_exception(spec):
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    app.run()
    if spec is not HOME:
        app.switch_page(str(spec.path))
        app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.title, "every page has a title"


def test_home_shows_both_datasets():
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    text = " ".join(m.value for m in app.markdown)
    assert "60,000 training" in text and "50,000 training" in text
    assert "airplane, automobile, bird" in text
