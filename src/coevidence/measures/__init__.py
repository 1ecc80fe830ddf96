"""coevidence.measures"""
