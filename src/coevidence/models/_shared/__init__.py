"""Algebra shared by the estimator families: data checks, demeaning, CR2 and small-sample corrections."""
