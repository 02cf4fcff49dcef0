-- The whole-history summary agrees with marts.network_nodes, built separately: node
-- count, volume, giant SCC size and number of communities, scope by scope (a scope with
-- no trade has a summary row of zeros and no node rows).
with nodes as (
    select
        scope,
        count(*) as nodes,
        sum(out_strength) as volume,
        count(*) filter (where in_giant_scc) as giant_scc_nodes,
        count(distinct community_id) as communities
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
