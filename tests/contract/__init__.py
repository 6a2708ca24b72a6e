"""The contract suite: behaviour every store kind must have (no backend names inside)."""
