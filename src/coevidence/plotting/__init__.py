"""coevidence.plotting"""
