"""anywidth.data"""
