-- Node metrics stay in range: PageRank in [0, 1] and summing to 1 per scope, re-spent
-- share in [0, 1], null exactly when the account received nothing from members, and the
-- same in both scopes (it is a member-network figure); degrees and coreness sane.
with nodes as (
    select * from marts.network_nodes
),

member as (
    select account_id, in_strength, respent_share from nodes where scope = 'member'
),

pagerank_totals as (
    select scope, sum(pagerank) as total from nodes group by scope
)

select nodes.scope, nodes.account_id, 'out of range' as problem
from nodes
left join member on member.account_id = nodes.account_id
where nodes.pagerank not between 0 and 1
   or nodes.respent_share not between 0 and 1
   or (nodes.respent_share is null) <> (member.in_strength = 0)
   or nodes.respent_share is distinct from member.respent_share
   or nodes.in_degree + nodes.out_degree = 0
   or nodes.coreness < 1
   or nodes.coreness > nodes.in_degree + nodes.out_degree
   or nodes.community_id < 0
union all
select scope, null as account_id, 'pagerank does not sum to 1' as problem
from pagerank_totals
where abs(total - 1) > 1e-6
