"""Training side: corpus building, training and evaluation. The service never imports this."""
