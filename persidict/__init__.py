"""persidict: persistent dict-like stores (being assembled)."""
