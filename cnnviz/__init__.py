"""cnnviz: see a convolutional neural network work, number by number.

The modules of this package hold the computation (data, convolution arithmetic, models,
training, preprocessing) and import neither Streamlit nor Plotly; the browser pages and the
figures live in :mod:`cnnviz.ui`.
"""

__version__ = "0.1.0"
