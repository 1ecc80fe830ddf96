"""coevidence.testing"""
