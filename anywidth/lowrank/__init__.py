"""anywidth.lowrank"""
