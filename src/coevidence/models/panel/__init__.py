"""Panel-data family: pooled, within, between, random effects, first differences (model, covariance, results)."""
