"""coevidence.data"""
