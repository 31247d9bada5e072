"""eval/scoring"""
