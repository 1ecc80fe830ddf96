"""coevidence.models"""
