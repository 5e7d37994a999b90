"""anywidth.graph"""
