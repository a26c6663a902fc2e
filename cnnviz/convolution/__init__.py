"""Convolution and pooling written out number by number: output-size arithmetic (``arithmetic``),
every window of a convolution (``steps``) and of a pooling layer (``pooling``), and the kernels a
student can pick or type (``kernels``). What the Convolution page computes."""
