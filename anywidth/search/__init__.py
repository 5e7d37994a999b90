"""anywidth.search"""
