"""Layer 5: the evaluation run, the report writer and its plots."""
