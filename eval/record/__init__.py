"""eval/record"""
