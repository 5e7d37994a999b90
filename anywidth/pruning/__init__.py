"""anywidth.pruning"""
