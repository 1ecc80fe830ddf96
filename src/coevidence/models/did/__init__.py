"""Staggered-adoption difference-in-differences family (Callaway-Sant'Anna, regression estimators, aggregation, small-sample inference, results)."""
