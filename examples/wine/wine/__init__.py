"""The wine example: three cultivars from a chemical analysis (multiclass)."""
