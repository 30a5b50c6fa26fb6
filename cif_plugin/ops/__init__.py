"""Operators for the output topologies, plain PyTorch: ``asg`` (our C++/CUDA kernels, imported lazily on
first use) and ``ctc`` (loss, searches, alignment)."""
