"""The diabetes example: disease progression after a year from ten baseline variables (regression)."""
