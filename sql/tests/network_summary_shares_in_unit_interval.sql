-- Every share, density and reciprocity of the network summary lies in [0, 1], a graph has
-- at most n(n - 1) edges, weighted reciprocity is 0 exactly when binary reciprocity is,
-- and the top 5 hubs never lose less than the top hub alone.
select scope, period_kind, period_start
from marts.network_summary
where density not between 0 and 1
   or reciprocity not between 0 and 1
   or weighted_reciprocity not between 0 and 1
   or (reciprocity = 0) <> (weighted_reciprocity = 0)
   or giant_scc_volume_share not between 0 and 1
   or cycle_volume_share not between 0 and 1
   or receipts_gini not between 0 and 1
   or receipts_hhi not between 0 and 1
   or receipts_top5_share not between 0 and 1
   or fragility_top1 not between 0 and 1
   or fragility_top5 not between 0 and 1
   or fragility_top5 < fragility_top1
   or top_hub_pagerank not between 0 and 1
   or modularity not between -0.5 and 1
   or edges > nodes * (nodes - 1)
   or giant_scc_nodes > nodes
   or communities > nodes
