"""The Convolution page: its script (``page``), cached work (``cache``), its figures and benchmark."""
