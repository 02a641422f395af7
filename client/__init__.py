"""The ``asr`` command: a client of the service, over HTTP and its WebSocket.

It imports neither PyTorch nor the service, so it starts in a fraction of a second and installs
anywhere the package does.
"""
