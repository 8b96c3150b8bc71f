"""Layer 10: test support shipped with the package (the pytest guard plugin)."""
