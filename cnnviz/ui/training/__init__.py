"""The Train page: its script (``page``), the settings form, live progress and run records
(``parts``), and its figures."""
