-- The as-of rows of fct_customer_churn_history are fct_customer_churn_risk:
-- the same customers, each with the same status, reason and thresholds (the
-- churn rule is written once, in the history). Returns the customers missing
-- on one side or differing.
with

history_as_of as (

    select * from {{ ref('fct_customer_churn_history') }}
    where is_as_of_date

),

churn_risk as (

    select * from {{ ref('fct_customer_churn_risk') }}

)

select
    coalesce(history_as_of.customer_key, churn_risk.customer_key) as customer_key,
    history_as_of.churn_status as history_churn_status,
    churn_risk.churn_status,
    history_as_of.churn_reason as history_churn_reason,
    churn_risk.churn_reason

from history_as_of
full outer join churn_risk
    on history_as_of.customer_key = churn_risk.customer_key
where
    history_as_of.customer_key is null
    or churn_risk.customer_key is null
    or history_as_of.churn_status is distinct from churn_risk.churn_status
    or history_as_of.churn_reason is distinct from churn_risk.churn_reason
    or history_as_of.expected_gap_days is distinct from churn_risk.expected_gap_days
    or history_as_of.at_risk_after_days is distinct from churn_risk.at_risk_after_days
    or history_as_of.lost_after_days is distinct from churn_risk.lost_after_days
    or history_as_of.as_of_date is distinct from churn_risk.as_of_date
