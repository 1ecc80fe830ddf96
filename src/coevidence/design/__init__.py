"""coevidence.design"""
