"""anywidth.cli"""
