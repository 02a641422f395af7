"""What the tests share: speech to send, servers to send it to (real or in-process), and a recogniser without a model.

The benchmarks use the speech and the real servers too.
"""
