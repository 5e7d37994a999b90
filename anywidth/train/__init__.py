"""anywidth.train"""
