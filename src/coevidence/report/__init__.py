"""coevidence.report"""
