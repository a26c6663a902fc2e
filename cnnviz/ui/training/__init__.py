"""The Train page: its script (``page``), the settings form and live progress (``parts``), the records
of this session's runs (``runs``), and its figures."""
