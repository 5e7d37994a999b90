"""Paper-reproduction studies built on the anywidth library.

Each study calls the library and writes what a paper reports — CSV tables, figures, which
findings hold — which the library itself never does: ReXNet's rank study of random layers
(`studies.rank_study`) and its channel configurations compared at equal MACs
(`studies.channel_search`). `anywidth rank-study` and `anywidth channel-search` run them.
"""
