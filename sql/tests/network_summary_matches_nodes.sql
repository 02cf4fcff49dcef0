-- The whole-history summary agrees with marts.network_nodes, built separately: node
-- count, volume, giant SCC size, number of communities and as-of day, scope by scope (a
-- scope with no trade has a summary row of zeros and no node rows).
with nodes as (
    select
        scope,
        count(*) as nodes,
        sum(out_strength) as volume,
        count(*) filter (where in_giant_scc) as giant_scc_nodes,
        count(distinct community_id) as communities,
        min(as_of_day) as as_of_day,
        max(as_of_day) as last_as_of_day
    from marts.network_nodes
    group by scope
),

summary as (
    select * from marts.network_summary where period_kind = 'all'
)

select summary.scope, summary.nodes, nodes.nodes as node_rows
from summary
full join nodes on nodes.scope = summary.scope
where summary.nodes is distinct from coalesce(nodes.nodes, 0)
   or summary.volume is distinct from coalesce(nodes.volume, 0)
   or summary.giant_scc_nodes is distinct from coalesce(nodes.giant_scc_nodes, 0)
   or summary.communities is distinct from coalesce(nodes.communities, 0)
   or summary.as_of_day is distinct from coalesce(nodes.as_of_day, summary.as_of_day)
   or nodes.as_of_day is distinct from nodes.last_as_of_day
