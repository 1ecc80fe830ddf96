"""Stepped-wedge family (Hussey-Hughes and exposure-time models, results)."""
