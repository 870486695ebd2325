"""Built-in plugins. Each module implements hooks exactly as a third-party plugin would."""
