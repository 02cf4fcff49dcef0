-- Where members' money goes, per month and over the whole history (period_kind month or
-- all): individual_spend = transfers paid by individuals, spend_at_businesses = the part
-- paid to local independent businesses, local_business_share = their ratio;
-- paid_to_public_bodies / paid_by_public_bodies = transfers received (business rates ...)
-- and paid (suppliers, salaries) by public bodies such as the council. Public bodies'
-- flows are public business: a figure is suppressed (null) only when fewer than
-- $k_anonymity distinct private counterparties (individuals, or those paying / paid by
-- public bodies) stand behind it.
with transfers as (
    select local_day, source_id, target_id, amount from intermediate.member_transfers
),

accounts as (
    select account_id, account_type from staging.accounts
),

typed as (
    select
        cast(date_trunc('month', transfers.local_day) as date) as month,
        transfers.source_id,
        transfers.target_id,
        transfers.amount,
        coalesce(payer.account_type, 'unknown') as payer_type,
        coalesce(payee.account_type, 'unknown') as payee_type
    from transfers
    left join accounts as payer on payer.account_id = transfers.source_id
    left join accounts as payee on payee.account_id = transfers.target_id
),

-- Sums per month, and each (month, role, account) once: the distinct counts of a month
-- and of the whole history come from these few rows instead of every transfer.
monthly as (
    select
        month,
        sum(amount) filter (where payer_type = 'individual') as individual_spend,
        sum(amount) filter (where payer_type = 'individual' and payee_type = 'business')
            as spend_at_businesses,
        sum(amount) filter (where payee_type = 'public_body' and payer_type <> 'public_body')
            as paid_to_public_bodies,
        sum(amount) filter (where payer_type = 'public_body' and payee_type <> 'public_body')
            as paid_by_public_bodies
    from typed
    group by month
),

roles as (
    select distinct month, role, account_id
    from (
        select month, 'individual' as role, source_id as account_id
        from typed
        where payer_type = 'individual'
        union all
        select month, 'pays_public_body', source_id
        from typed
        where payee_type = 'public_body' and payer_type <> 'public_body'
        union all
        select month, 'paid_by_public_body', target_id
        from typed
        where payer_type = 'public_body' and payee_type <> 'public_body'
    )
),

-- Each month and the whole history (the empty grouping set is the latter).
counted as (
    select
        month,
        count(distinct account_id) filter (where role = 'individual') as individuals,
        count(distinct account_id) filter (where role = 'pays_public_body')
            as payers_to_public_bodies,
        count(distinct account_id) filter (where role = 'paid_by_public_body')
            as payees_of_public_bodies
    from roles
    group by grouping sets ((month), ())
),

sums as (
    select
        month,
        individual_spend,
        spend_at_businesses,
        paid_to_public_bodies,
        paid_by_public_bodies
    from monthly
    union all
    select
        null,
        sum(individual_spend),
        sum(spend_at_businesses),
        sum(paid_to_public_bodies),
        sum(paid_by_public_bodies)
    from monthly
    having count(*) > 0  -- no whole-history row without transfers
),

totals as (
    select
        if(sums.month is null, 'all', 'month') as period_kind,
        coalesce(sums.month, (select min(local_day) from transfers)) as period_start,
        sums.individual_spend,
        sums.spend_at_businesses,
        coalesce(counted.individuals, 0) as individuals,
        sums.paid_to_public_bodies,
        coalesce(counted.payers_to_public_bodies, 0) as payers_to_public_bodies,
        sums.paid_by_public_bodies,
        coalesce(counted.payees_of_public_bodies, 0) as payees_of_public_bodies
    from sums
    left join counted on counted.month is not distinct from sums.month
)

select
    period_kind,
    period_start,
    case when individuals >= $k_anonymity then individuals end as individuals,
    case when individuals >= $k_anonymity
        then cast(coalesce(individual_spend, 0) as decimal(18, 2)) end as individual_spend,
    case when individuals >= $k_anonymity
        then cast(coalesce(spend_at_businesses, 0) as decimal(18, 2)) end as spend_at_businesses,
    case when individuals >= $k_anonymity and individual_spend > 0
        then cast(coalesce(spend_at_businesses, 0) / individual_spend as double) end
        as local_business_share,
    case when payers_to_public_bodies >= $k_anonymity
        then cast(paid_to_public_bodies as decimal(18, 2)) end as paid_to_public_bodies,
    payers_to_public_bodies,
    case when payees_of_public_bodies >= $k_anonymity
        then cast(paid_by_public_bodies as decimal(18, 2)) end as paid_by_public_bodies,
    payees_of_public_bodies,
    cast($k_anonymity as integer) as k_anonymity
from totals
order by period_kind desc, period_start
