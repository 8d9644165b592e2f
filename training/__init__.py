"""Training service: rebuilds the models from the Delta tables and tracks them in MLflow."""
