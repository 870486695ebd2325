"""Optional plugins whose libraries come from extras (``pip install 'tether[EXTRA]'``).

Each module imports its third-party libraries inside functions, so it always loads and
reports itself unavailable, with the install command, when its extra is missing.
"""
