"""MNIST and CIFAR-10: the full sets read from a data folder (``files``) and the few test images
bundled with the app (``samples``)."""
