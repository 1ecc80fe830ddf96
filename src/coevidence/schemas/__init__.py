"""coevidence.schemas"""
