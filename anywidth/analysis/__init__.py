"""anywidth.analysis"""
