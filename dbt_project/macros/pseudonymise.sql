{#-
    Keyed hash of a text expression: hex sha256 of '<secret>|<expr>'.
    The key is the session setting crm.customer_key_secret, which the nightly
    build gives dbt's connections through libpq's PGOPTIONS
    (include.dbt_build.dbt_env, from CRM_CUSTOMER_KEY_SECRET): never a literal in
    the SQL, so it reaches neither target/ nor dbt's logs nor the server's
    statement log. Without it a customer_key cannot be linked back to a person by
    hashing guesses; a session without it fails ("unrecognized configuration
    parameter"). Uses the built-in sha256(bytea) of PostgreSQL 11+.
-#}
{% macro pseudonymise(expr) -%}
    encode(sha256(convert_to(current_setting('crm.customer_key_secret') || '|' || ({{ expr }}), 'UTF8')), 'hex')
{%- endmacro %}
