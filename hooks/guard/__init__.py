"""hooks/guard"""
