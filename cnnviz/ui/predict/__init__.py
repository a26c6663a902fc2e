"""The Inspect and predict page: its script (``page``), cached work and inputs (``parts``),
its figures and benchmark."""
