"""The Convolution page: its script (``page``), cached work (``cache``), its figures (``figures``,
``pool_figure`` on the panels of ``layout``) and benchmark (``bench``)."""
