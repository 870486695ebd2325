"""The iris example: three species from four measurements (multiclass)."""
