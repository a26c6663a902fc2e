"""A student's image through a trained network: decoding an upload (``decode``), the Convolution
page's picture (``picture``), preparing it as the dataset's images were (``preprocess``), and what the
network makes of it (``inspection``, ``predict``); ``staged_photos`` makes phone-photo test digits."""
