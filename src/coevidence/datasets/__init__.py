"""coevidence.datasets"""
