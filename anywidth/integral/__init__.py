"""anywidth.integral"""
